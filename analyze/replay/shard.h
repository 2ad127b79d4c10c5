/* shard.h — which images a shard of a replay job takes (`replay --shard I/N`, MPI ranks).
 *
 * The rule (docs/scale-out.md): the job's COUNT images are cut into B = ceil(COUNT / G)
 * groups of the forward pass's group size G (the last group holds what remains); shard I
 * of N takes the contiguous groups floor(I·B/N) .. floor((I+1)·B/N) − 1. Shards are thus
 * contiguous, disjoint, cover the job in order, differ by at most one group, and start on
 * group boundaries of the job — so a shard's forward groups are the single-process run's
 * groups and its records are bit-identical to that run's records for the same images.
 * N may not exceed B (a shard would be empty). Pure arithmetic: no I/O, no state. */
#ifndef RS_SHARD_H
#define RS_SHARD_H

#include "rs_error.h"

/* Fills *FIRST (relative to the job's first image) and *LEN of shard INDEX of SHARDS for a
 * job of COUNT images in groups of GROUP. RS_EINVAL with a message when COUNT or GROUP is
 * below 1, INDEX is outside 0 .. SHARDS − 1, or SHARDS exceeds the number of groups. */
int rs_shard_slice(int count, int group, int index, int shards, int *first, int *len, rs_error *err);

#endif
