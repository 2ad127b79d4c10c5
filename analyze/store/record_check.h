/* record_check.h — what one stored routing row must hold, as one header-only function, so
 * that the store's run check (check.c, rs_store_check_run) and the SQL extension
 * (sqlite/rs_sqlite.c, which links no analyze code) refuse exactly the same rows.
 *
 * A row of T tokens, R recorded ranks, E experts and the model's k (docs/store.md):
 *   top_idx  T*R bytes: expert ids < E, distinct within a token
 *   top_gate T*R float32 LE: finite and non-increasing within a token. The codec stores one
 *            float32 softmax value twice, as the gate and (rounded to nearest even) as the
 *            float16 probability, so each gate rounds exactly to its expert's stored
 *            probability; and as the R are the router's top R, no expert outside them has a
 *            larger stored probability than the R-th
 *   probs    T*E float16 LE: finite (no inf, no NaN), not negative, and summing to 1 within
 *            RS_RECORD_SUM_TOL (so all zeros fail)
 *   kept     SQL NULL, or T*R bytes of 0/1 with 0 at ranks >= k
 *   executed SQL NULL, or T*k expert ids < E
 * and what one predictions row's match map must hold (rs_record_match_ok below).
 * A run recorded with --record topk (store.h, rs_record_form) has no softmax: its probs BLOBs
 * are empty (0 bytes), and its gates are checked on their own: ids as above, gates finite,
 * in [0, 1], non-increasing, and summing to at most 1 + RS_RECORD_SUM_TOL per token (they
 * are R of the router's float32 probabilities).
 * The tolerance: float16 rounds each float32 probability to within 2^-11 of its value
 * (2^-25 absolute below 2^-14), so E stored values sum to within 2^-11 + E*2^-25 of the
 * float32 sum, itself within about E*2^-24 of 1: under 5.2e-4 for E <= 256. The check
 * allows 2^-10 (9.8e-4), about twice that bound, and sums exactly (integers in units of
 * 2^-24), so the outcome depends on no summation order.
 *
 * No allocation, no globals; header-only itself, with base/half.h and base/rs_le.h. */
#ifndef RS_RECORD_CHECK_H
#define RS_RECORD_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "half.h"
#include "rs_le.h"

/* 2^-10 in units of 2^-24 (1.0 is 2^24 units). */
#define RS_RECORD_SUM_TOL_UNITS (1u << 14)
#define RS_RECORD_SUM_TOL (1.0 / 1024)

typedef struct rs_record_row {
    int tokens, record_k, top_k, experts;       /* T, R, k, E; 1 <= k <= R <= E <= 256 */
    bool topk;                                  /* the run records no softmax: probs is 0 bytes */
    const uint8_t *top_idx, *top_gate, *probs;
    size_t n_idx, n_gate, n_probs;              /* their sizes in bytes */
    bool has_kept, has_executed;                /* false: the column is SQL NULL */
    const uint8_t *kept, *executed;
    size_t n_kept, n_executed;
} rs_record_row;

/* A float16 probability in units of 2^-24 (exact: 2^-24 is the smallest subnormal). H must
 * be finite and not negative. */
static inline uint64_t rs_record_half_units(uint16_t h)
{
    unsigned e = (h >> 10) & 0x1f, normal = e != 0; /* branch-free: subnormals are not rare */
    return (uint64_t)((h & 0x3ff) | normal << 10) << (e - normal);
}

/* Rank R's expert id of token T (IDX its R ranks): below E and unlike the ranks before it.
 * false with WHY otherwise. */
static inline bool rs_record_rank_id_ok(const uint8_t *idx, int r, int E, int t, char *why, size_t size)
{
    if (idx[r] >= E) {
        snprintf(why, size, "token %d rank %d: expert id %d >= %d experts", t, r, idx[r], E);
        return false;
    }
    for (int q = 0; q < r; q++)
        if (idx[q] == idx[r]) {
            snprintf(why, size, "token %d: expert %d at ranks %d and %d", t, idx[r], q, r);
            return false;
        }
    return true;
}

/* The ranks of token T: ids < E and distinct, gates finite, non-increasing and rounding to
 * their experts' probabilities. true when sound, else false with WHY; *LAST is the last
 * rank's stored probability and *ABOVE how many ranks before it have a larger one. */
static inline bool rs_record_ranks_ok(const rs_record_row *row, int t, uint16_t *last, int *above, char *why,
                                      size_t size)
{
    const int R = row->record_k, E = row->experts;
    const uint8_t *idx = row->top_idx + (size_t)t * R, *gate = row->top_gate + 4 * (size_t)t * R,
                  *probs = row->probs + 2 * (size_t)t * E;
    float prev = 0;
    for (int r = 0; r < R; r++) {
        if (!rs_record_rank_id_ok(idx, r, E, t, why, size))
            return false;
        float g = rs_le_get_f32(gate + 4 * (size_t)r);
        uint16_t p = rs_le_get_u16(probs + 2 * (size_t)idx[r]);
        if (!isfinite(g) || (r > 0 && g > prev) || rs_float_to_half(g) != p) {
            snprintf(why, size, "token %d rank %d: gate %.9g %s (expert %d, float16 probability %.9g)", t, r,
                     (double)g,
                     !isfinite(g)        ? "is not finite"
                     : r > 0 && g > prev ? "exceeds the gate of the rank before"
                                         : "does not round to its expert's probability",
                     idx[r], (double)rs_half_to_float(p));
            return false;
        }
        prev = g;
        *last = p;
    }
    *above = 0;
    for (int r = 0; r < R - 1; r++)
        *above += rs_le_get_u16(probs + 2 * (size_t)idx[r]) > *last;
    return true;
}

/* Token T of ROW (its sizes already checked); false with WHY. The E probabilities are read in
 * one branch-free loop; the message of a fault is found after it. Faults of the
 * probabilities are told before those of the ranks. */
static inline bool rs_record_check_token(const rs_record_row *row, int t, char *why, size_t size)
{
    const int R = row->record_k, E = row->experts;
    const uint8_t *probs = row->probs + 2 * (size_t)t * E;
    int above_top = 0, above_all = 0;
    uint16_t last = 0;
    bool ranks = rs_record_ranks_ok(row, t, &last, &above_top, why, size);
    uint64_t sum = 0;
    unsigned bad = 0;
    for (int e = 0; e < E; e++) {
        uint16_t h = rs_le_get_u16(probs + 2 * (size_t)e);
        bad |= ((h & 0x7c00) == 0x7c00) | (h >> 15);
        sum += rs_record_half_units(h & 0x7fff);
        above_all += h > last; /* halves >= 0 order as their bits do */
    }
    for (int e = 0; bad && e < E; e++) {
        uint16_t h = rs_le_get_u16(probs + 2 * (size_t)e);
        if ((h & 0x7c00) == 0x7c00 || (h & 0x8000)) {
            snprintf(why, size, "token %d: float16 probability of expert %d is %s", t, e,
                     (h & 0x7c00) == 0x7c00 ? ((h & 0x3ff) ? "NaN" : "infinite") : "negative");
            return false;
        }
    }
    const uint64_t one = 1u << 24;
    if (sum + RS_RECORD_SUM_TOL_UNITS < one || sum > one + RS_RECORD_SUM_TOL_UNITS) {
        snprintf(why, size, "token %d: float16 probabilities sum to %.6f, not 1 within 2^-10", t,
                 (double)sum / (double)one);
        return false;
    }
    if (!ranks)
        return false;
    if (above_all != above_top) {
        snprintf(why, size, "token %d: an expert outside the top %d has a larger probability than rank %d", t, R,
                 R - 1);
        return false;
    }
    return true;
}

/* Token T of a topk ROW (no softmax): ids < E and distinct, gates finite, in [0, 1],
 * non-increasing and summing to at most 1 + RS_RECORD_SUM_TOL. false with WHY. */
static inline bool rs_record_check_topk_token(const rs_record_row *row, int t, char *why, size_t size)
{
    const int R = row->record_k, E = row->experts;
    const uint8_t *idx = row->top_idx + (size_t)t * R, *gate = row->top_gate + 4 * (size_t)t * R;
    double sum = 0;
    float prev = 1;
    for (int r = 0; r < R; r++) {
        if (!rs_record_rank_id_ok(idx, r, E, t, why, size))
            return false;
        float g = rs_le_get_f32(gate + 4 * (size_t)r);
        if (!(g >= 0 && g <= prev)) { /* NaN fails too */
            snprintf(why, size, "token %d rank %d: gate %.9g %s", t, r, (double)g,
                     !(g >= 0) || g > 1 ? "is not a probability" : "exceeds the gate of the rank before");
            return false;
        }
        prev = g;
        sum += g;
    }
    if (sum > 1 + RS_RECORD_SUM_TOL) {
        snprintf(why, size, "token %d: gates sum to %.6f, more than 1", t, sum);
        return false;
    }
    return true;
}

/* A match map (predictions.match) of NP patches: NP int16 LE view-0 targets in -1 .. NP-1,
 * or 0 bytes, which stands for the identity (patch p matches patch p): since schema 8 the
 * writer stores an identity map so, for a view that moves no pixel (clean, noise,
 * corruptions: docs/store.md, "Size"). M may be NULL only when N is 0. */
static inline bool rs_record_match_ok(const uint8_t *m, size_t n, int patches)
{
    if (n == 0)
        return true;
    if (!m || n != 2 * (size_t)patches)
        return false;
    for (int p = 0; p < patches; p++) {
        int v = (int16_t)rs_le_get_u16(m + 2 * (size_t)p);
        if (v < -1 || v >= patches)
            return false;
    }
    return true;
}

/* Patch P's target in a match map that passed rs_record_match_ok (N bytes). */
static inline int rs_record_match_at(const uint8_t *m, size_t n, int p)
{
    return n ? (int16_t)rs_le_get_u16(m + 2 * (size_t)p) : p;
}

/* true when ROW is a sound routing row; else false with WHY, one phrase naming the token
 * or BLOB at fault. */
static inline bool rs_record_check(const rs_record_row *row, char *why, size_t size)
{
    const size_t T = (size_t)row->tokens, R = (size_t)row->record_k, E = (size_t)row->experts,
                 k = (size_t)row->top_k;
    const size_t got[5] = {row->n_idx, row->n_gate, row->n_probs, row->n_kept, row->n_executed};
    const size_t want[5] = {T * R, 4 * T * R, row->topk ? 0 : 2 * T * E, T * R, T * k};
    const void *ptr[5] = {row->top_idx, row->top_gate, row->probs, row->kept, row->executed};
    const bool present[5] = {true, true, true, row->has_kept, row->has_executed};
    static const char *const names[5] = {"top_idx", "top_gate", "probs", "kept", "executed"};
    for (int i = 0; i < 5; i++)
        if (present[i] && (got[i] != want[i] || (want[i] && !ptr[i]))) {
            snprintf(why, size, "%s BLOB of %zu bytes, expected %zu", names[i], got[i], want[i]);
            return false;
        }
    for (size_t t = 0; t < T; t++)
        if (!(row->topk ? rs_record_check_topk_token(row, (int)t, why, size)
                        : rs_record_check_token(row, (int)t, why, size)))
            return false;
    for (size_t q = 0; row->has_kept && q < T * R; q++)
        if (row->kept[q] > 1 || (row->kept[q] && q % R >= k)) {
            snprintf(why, size, "token %zu rank %zu: kept byte %d%s", q / R, q % R, row->kept[q],
                     row->kept[q] > 1 ? " (0 or 1 expected)" : " beyond the model's k");
            return false;
        }
    for (size_t q = 0; row->has_executed && q < T * k; q++)
        if (row->executed[q] >= E) {
            snprintf(why, size, "token %zu: executed expert id %d >= %zu experts", q / k, row->executed[q], E);
            return false;
        }
    return true;
}

#endif
