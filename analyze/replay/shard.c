#include "shard.h"

#include <stdint.h>

int rs_shard_slice(int count, int group, int index, int shards, int *first, int *len, rs_error *err)
{
    *first = *len = 0;
    if (count < 1 || group < 1)
        return rs_error_set(err, RS_EINVAL, "a shard needs a job of at least one image and a group size");
    int64_t groups = ((int64_t)count + group - 1) / group;
    if (shards < 1 || index < 0 || index >= shards)
        return rs_error_set(err, RS_EINVAL, "shard %d/%d: want 0 <= I < N", index, shards);
    if (shards > groups)
        return rs_error_set(err, RS_EINVAL,
                            "shard %d/%d: the job's %d images make %lld groups of %d, so at most %lld shards",
                            index, shards, count, (long long)groups, group, (long long)groups);
    /* 64-bit products: index * groups overflows int for large jobs. */
    int64_t g0 = (int64_t)index * groups / shards, g1 = ((int64_t)index + 1) * groups / shards;
    int64_t end = g1 * group < count ? g1 * group : count;
    *first = (int)(g0 * group);
    *len = (int)(end - g0 * group);
    return 0;
}
