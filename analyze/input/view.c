#include "view.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrupt.h"
#include "rs_number.h"
#include "rs_seed.h"

static const double severity_sigma[5] = {0.08, 0.12, 0.18, 0.26, 0.38};

/* ---- parsing ---------------------------------------------------------------------- */

/* Numbers in specs follow the one grammar of user numbers (rs_number.h): decimal, whole. */
static int parse_number(const char *spec, const char *key, const char *text, double *out, rs_error *err)
{
    if (rs_parse_number(text, out))
        return rs_error_set(err, RS_EINVAL, "view '%s': %s '%s' is not a number", spec, key, text);
    return 0;
}

/* "A-B" into lo, hi (a single number gives lo = hi). A is the longest decimal number at
 * the start, so exponents such as 1e-3 stay part of it; a '-' must follow it for a range. */
static int parse_range(const char *spec, const char *key, const char *text, double *lo, double *hi, rs_error *err)
{
    size_t n = rs_number_span(text);
    char first[64];
    if (!n || n >= sizeof first || (text[n] && text[n] != '-'))
        return rs_error_set(err, RS_EINVAL, "view '%s': %s '%s' is not a number or a range A-B", spec, key, text);
    memcpy(first, text, n);
    first[n] = '\0';
    if (rs_parse_number(first, lo) || (text[n] && rs_parse_number(text + n + 1, hi)))
        return rs_error_set(err, RS_EINVAL, "view '%s': %s '%s' is not a number or a range A-B", spec, key, text);
    if (!text[n])
        *hi = *lo;
    else if (*lo > *hi)
        return rs_error_set(err, RS_EINVAL, "view '%s': %s range '%s' runs backwards", spec, key, text);
    return 0;
}

static int check_range(const char *spec, const char *key, double v, double lo, double hi, rs_error *err)
{
    if (v < lo || v > hi)
        return rs_error_set(err, RS_EINVAL, "view '%s': %s %g outside [%g, %g]", spec, key, v, lo, hi);
    return 0;
}

typedef struct op_syntax {
    const char *name;
    rs_op_kind kind;
    const char *keys[4]; /* accepted keys, in p[] order (ranges take two slots), NULL-ended */
} op_syntax;

static const op_syntax ops_syntax[] = {
    {"clean", RS_OP_CLEAN, {NULL}},
    {"noise", RS_OP_NOISE, {"sigma", "severity", NULL}},
    {"crop", RS_OP_CROP, {"area", "ratio", NULL}},
    {"flip", RS_OP_FLIP, {"p", NULL}},
    {"rotate", RS_OP_ROTATE, {"deg", NULL}},
    {"translate", RS_OP_TRANSLATE, {"px", NULL}},
    {"jitter", RS_OP_JITTER, {"b", "c", "s", NULL}},
    {"corrupt", RS_OP_CORRUPT, {"name", "severity", "set", NULL}},
};

/* Edits (insert, delete, substitute, swap two neighbours) from A to B, at most 16 each; a
   longer word counts as too far (99). */
static int key_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 16 || m > 16)
        return 99;
    int d[17][17];
    for (size_t i = 0; i <= n; i++)
        for (size_t j = 0; j <= m; j++) {
            if (!i || !j) {
                d[i][j] = (int)(i + j);
                continue;
            }
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]), del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            int best = sub < del ? sub : del;
            best = ins < best ? ins : best;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

/* KEY is none of OP's KEYS (NULL-ended): the one error line of every operation names the
   closest key when KEY is likely a typo of it (one edit from a key of 3 to 7 letters, two
   from a longer one; a one- or two-letter key is never guessed) and then all of them, at
   the end, where a long spec's message is never cut. */
static int unknown_key(const char *spec, const char *op, const char *key, const char *const *keys, rs_error *err)
{
    char list[160] = "", guess[48] = "";
    size_t used = 0;
    int best = 99;
    for (int i = 0; keys[i]; i++) {
        int d = key_distance(key, keys[i]);
        size_t len = strlen(keys[i]);
        if (d < best && d <= (len <= 2 ? 0 : len <= 7 ? 1 : 2)) {
            best = d;
            snprintf(guess, sizeof guess, "did you mean '%s'? ", keys[i]);
        }
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", keys[i]);
        used += w > 0 && (size_t)w < sizeof list - used ? (size_t)w : 0;
    }
    return rs_error_set(err, RS_EINVAL, "view '%s': %s has no parameter '%s' (%s%s takes %s)", spec, op, key, guess,
                        op, keys[0] ? list : "none");
}

static void op_defaults(rs_view_op *op)
{
    memset(op->p, 0, sizeof op->p);
    switch (op->kind) {
    case RS_OP_CROP: op->p[0] = 0.05, op->p[1] = 1, op->p[2] = 0.75, op->p[3] = 4.0 / 3; break;
    case RS_OP_FLIP: op->p[0] = 0.5; break;
    case RS_OP_CORRUPT: op->p[0] = -1, op->p[2] = RS_CSET_AUTO; break;
    default: break;
    }
}

/* corrupt's keys: name= the benchmark's function name, severity= 1..5, set= imagenet|cifar. */
static int parse_corrupt_param(const char *spec, rs_view_op *op, const char *key, const char *value, rs_error *err)
{
    if (!strcmp(key, "name")) {
        op->p[0] = rs_corrupt_find(value);
        /* The reason first and no list of names: a list pushes a long spec's message past
         * what an rs_error holds, and --help and docs/corruptions.md list them. */
        if (op->p[0] < 0 && !strcmp(value, "spatter"))
            return rs_error_set(err, RS_EINVAL, "corruption '%s' is not implemented (docs/corruptions.md says why), "
                                "in view '%s'", value, spec);
        if (op->p[0] < 0)
            return rs_error_set(err, RS_EINVAL, "unknown corruption '%s' (the names: 'routerscope replay --help'), "
                                "in view '%s'", value, spec);
    } else if (!strcmp(key, "severity")) {
        double v = 0;
        int rc = parse_number(spec, key, value, &v, err);
        if (rc)
            return rc;
        if (v != floor(v) || v < 1 || v > 5)
            return rs_error_set(err, RS_EINVAL, "view '%s': severity must be 1, 2, 3, 4 or 5", spec);
        op->p[1] = v;
    } else if (!strcmp(value, "imagenet") || !strcmp(value, "cifar")) {
        op->p[2] = value[0] == 'i' ? RS_CSET_IMAGENET : RS_CSET_CIFAR;
    } else {
        return rs_error_set(err, RS_EINVAL, "view '%s': set must be imagenet or cifar", spec);
    }
    return 0;
}

static int parse_param(const char *spec, rs_view_op *op, const char *key, const char *value, rs_error *err)
{
    double v = 0;
    int rc;
    switch (op->kind) {
    case RS_OP_NOISE:
        if (!strcmp(key, "sigma")) {
            if ((rc = parse_number(spec, key, value, &v, err)) || (rc = check_range(spec, key, v, 0, 10, err)))
                return rc;
            op->p[0] = v;
        } else {
            if ((rc = parse_number(spec, key, value, &v, err)))
                return rc;
            if (v != floor(v) || v < 1 || v > 5)
                return rs_error_set(err, RS_EINVAL, "view '%s': severity must be 1, 2, 3, 4 or 5", spec);
            op->p[0] = severity_sigma[(int)v - 1];
        }
        return 0;
    case RS_OP_CROP:
        if (!strcmp(key, "area")) {
            if ((rc = parse_range(spec, key, value, &op->p[0], &op->p[1], err)))
                return rc;
            if (op->p[0] <= 0 || op->p[1] > 1)
                return rs_error_set(err, RS_EINVAL, "view '%s': area must lie in (0, 1]", spec);
        } else {
            if ((rc = parse_range(spec, key, value, &op->p[2], &op->p[3], err)))
                return rc;
            if (op->p[2] <= 0)
                return rs_error_set(err, RS_EINVAL, "view '%s': ratio must be positive", spec);
        }
        return 0;
    case RS_OP_FLIP:
        if ((rc = parse_number(spec, key, value, &v, err)) || (rc = check_range(spec, key, v, 0, 1, err)))
            return rc;
        op->p[0] = v;
        return 0;
    case RS_OP_ROTATE:
    case RS_OP_TRANSLATE:
        if ((rc = parse_number(spec, key, value, &v, err)) || (rc = check_range(spec, key, v, 0, 360, err)))
            return rc;
        op->p[0] = v;
        return 0;
    case RS_OP_JITTER:
        if ((rc = parse_number(spec, key, value, &v, err)) || (rc = check_range(spec, key, v, 0, 1, err)))
            return rc;
        op->p[key[0] == 'b' ? 0 : key[0] == 'c' ? 1 : 2] = v;
        return 0;
    case RS_OP_CORRUPT:
        return parse_corrupt_param(spec, op, key, value, err);
    case RS_OP_CLEAN:
    case RS_OP_BASE: /* parsed by parse_base, parse_pgd and parse_route */
    case RS_OP_PGD:
    case RS_OP_ROUTE:
        break;
    }
    return rs_error_set(err, RS_EINVAL, "view '%s': unexpected parameter '%s'", spec, key);
}

/* A number or a fraction "A/B" (B > 0), as eps and alpha take them (4/255). */
static int parse_fraction(const char *spec, const char *key, const char *text, double *out, rs_error *err)
{
    if (rs_parse_fraction(text, out))
        return rs_error_set(err, RS_EINVAL, "view '%s': %s '%s' is not a number or a fraction A/B", spec, key, text);
    return 0;
}

/* One of the words of CHOICES (NULL-terminated): its index. */
static int parse_word(const char *spec, const char *key, const char *text, const char *const *choices,
                      const char *want, int *out, rs_error *err)
{
    for (int i = 0; choices[i]; i++)
        if (!strcmp(text, choices[i])) {
            *out = i;
            return 0;
        }
    return rs_error_set(err, RS_EINVAL, "view '%s': %s '%s' is not %s", spec, key, text, want);
}

/* The keys pgd: takes itself; the objective's keys go to rs_objective_set (grad.h). */
enum { PGD_EPS, PGD_ALPHA, PGD_STEPS, PGD_NORM, PGD_START, PGD_MODE, PGD_KEYS };
static const char *const pgd_keys[PGD_KEYS] = {"eps", "alpha", "steps", "norm", "start", "mode"};
/* Every key pgd: takes, its own and rs_objective_set's (grad.h), for the unknown-key error. */
static const char *const pgd_all_keys[] = {"eps", "steps", "alpha", "loss", "beta", "target", "norm", "start",
                                           "mode", "layers", NULL};

static int parse_pgd_key(const char *spec, rs_attack_spec *a, int key, const char *value, rs_error *err)
{
    static const char *const norms[] = {"linf", "l2", NULL}, *const starts[] = {"random", "zero", NULL},
                             *const modes[] = {"pgd", "vmoe", NULL};
    double v = 0;
    int w = 0, rc;
    switch (key) {
    case PGD_EPS:
        if ((rc = parse_fraction(spec, "eps", value, &a->eps, err)))
            return rc;
        return check_range(spec, "eps", a->eps, 0, 1e4, err);
    case PGD_ALPHA:
        if ((rc = parse_fraction(spec, "alpha", value, &a->alpha, err)))
            return rc;
        if (a->alpha <= 0 || a->alpha > 1e4)
            return rs_error_set(err, RS_EINVAL, "view '%s': alpha %g outside (0, 10000]", spec, a->alpha);
        return 0;
    case PGD_STEPS:
        if ((rc = parse_number(spec, "steps", value, &v, err)))
            return rc;
        if (v != floor(v) || v < 1 || v > RS_ATTACK_MAX_STEPS)
            return rs_error_set(err, RS_EINVAL, "view '%s': steps '%s' is not an integer in [1, %d]", spec, value,
                                RS_ATTACK_MAX_STEPS);
        a->steps = (int)v;
        return 0;
    case PGD_NORM:
        rc = parse_word(spec, "norm", value, norms, "linf or l2", &w, err);
        a->norm = w ? RS_ATTACK_L2 : RS_ATTACK_LINF;
        return rc;
    case PGD_START:
        rc = parse_word(spec, "start", value, starts, "random or zero", &w, err);
        a->random_start = w == 0;
        return rc;
    default:
        rc = parse_word(spec, "mode", value, modes, "pgd or vmoe", &w, err);
        a->vmoe = w == 1;
        return rc;
    }
}

/* Fills in what the keys left out; mode=vmoe takes no step, norm or start of its own.
 * LOSS_GIVEN: the spec named the loss. */
static int pgd_defaults(const char *spec, rs_attack_spec *a, const bool *given, bool loss_given, rs_error *err)
{
    if (!given[PGD_EPS])
        return rs_error_set(err, RS_EINVAL, "view '%s': pgd needs eps=E (e.g. eps=4/255)", spec);
    if (a->vmoe) {
        const char *clash = given[PGD_ALPHA] ? "alpha" : given[PGD_NORM] ? "norm" :
                            given[PGD_START] && a->random_start ? "start=random" : NULL;
        if (clash)
            return rs_error_set(err, RS_EINVAL,
                                "view '%s': mode=vmoe takes no %s (its steps are eps/steps, L-inf sign steps from "
                                "the start pixels)", spec, clash);
        a->steps = given[PGD_STEPS] ? a->steps : 40;
        a->alpha = a->eps / a->steps;
        a->random_start = false;
        a->norm = RS_ATTACK_LINF;
        /* vmoe's own loss: the cross-entropy of the label. */
        return loss_given ? 0 : rs_objective_set(&a->objective, "loss", "ce", err) < 0 ? RS_EINVAL : 0;
    }
    a->steps = given[PGD_STEPS] ? a->steps : 10;
    a->alpha = given[PGD_ALPHA] ? a->alpha : 2.5 * a->eps / a->steps;
    a->random_start = given[PGD_START] ? a->random_start : true;
    return 0;
}

/* pgd's "k=v,..." (modified in place) into OUT->pgd. */
static int parse_pgd(const char *spec, char *params, rs_view_spec *out, rs_error *err)
{
    if (out->attack)
        return rs_error_set(err, RS_EINVAL, "view '%s': more than one pgd operation", spec);
    out->attack = true;
    rs_attack_spec *a = &out->pgd;
    memset(a, 0, sizeof *a);
    rs_objective_init(&a->objective);
    bool given[PGD_KEYS] = {false}, loss_given = false;
    char *save = NULL;
    for (char *kv = params ? strtok_r(params, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return rs_error_set(err, RS_EINVAL, "view '%s': '%s' is not KEY=VALUE", spec, kv);
        *eq = '\0';
        int key = 0;
        while (key < PGD_KEYS && strcmp(kv, pgd_keys[key]))
            key++;
        if (key < PGD_KEYS) {
            if (given[key])
                return rs_error_set(err, RS_EINVAL, "view '%s': pgd's %s is given twice", spec, kv);
            given[key] = true;
            int rc = parse_pgd_key(spec, a, key, eq + 1, err);
            if (rc)
                return rc;
            continue;
        }
        rs_error why;
        int rc = rs_objective_set(&a->objective, kv, eq + 1, &why);
        if (rc < 0)
            return rs_error_set(err, RS_EINVAL, "view '%s': %s", spec, why.msg);
        if (rc == 0)
            return unknown_key(spec, "pgd", kv, pgd_all_keys, err);
        loss_given |= !strcmp(kv, "loss");
    }
    return pgd_defaults(spec, a, given, loss_given, err);
}

/* "view=V", V a non-negative integer (an earlier view: rs_view_spec_check_base). */
static int parse_base(const char *spec, char *params, rs_view_op *op, rs_error *err)
{
    char *eq = params ? strchr(params, '=') : NULL;
    if (!eq || strncmp(params, "view=", 5) || strchr(eq, ','))
        return rs_error_set(err, RS_EINVAL, "view '%s': base takes one key, view=V (an earlier view)", spec);
    double v = 0;
    int rc = parse_number(spec, "view", eq + 1, &v, err);
    if (rc)
        return rc;
    if (v != floor(v) || v < 0 || v > 1e6)
        return rs_error_set(err, RS_EINVAL, "view '%s': base view '%s' is not a view index", spec, eq + 1);
    op->p[0] = v;
    return 0;
}

/* route's "from=F[,layers=B1/B2]" (modified in place) into OUT. */
static int parse_route(const char *spec, char *params, rs_view_spec *out, rs_error *err)
{
    if (out->route_from >= 0)
        return rs_error_set(err, RS_EINVAL, "view '%s': more than one route operation", spec);
    bool have_layers = false;
    char *save = NULL;
    for (char *kv = params ? strtok_r(params, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return rs_error_set(err, RS_EINVAL, "view '%s': '%s' is not KEY=VALUE", spec, kv);
        *eq = '\0';
        bool from = !strcmp(kv, "from");
        static const char *const route_keys[] = {"from", "layers", NULL};
        if (!from && strcmp(kv, "layers"))
            return unknown_key(spec, "route", kv, route_keys, err);
        if (from ? out->route_from >= 0 : have_layers)
            return rs_error_set(err, RS_EINVAL, "view '%s': route's %s is given twice", spec, kv);
        if (!from) {
            rs_error why;
            if (rs_parse_block_list(eq + 1, &out->route_blocks, &why))
                return rs_error_set(err, RS_EINVAL, "view '%s': %s", spec, why.msg);
            have_layers = true;
            continue;
        }
        double v = 0;
        int rc = parse_number(spec, "from", eq + 1, &v, err);
        if (rc)
            return rc;
        if (v != floor(v) || v < 0 || v > 1e6)
            return rs_error_set(err, RS_EINVAL, "view '%s': route's from '%s' is not a view index", spec, eq + 1);
        out->route_from = (int)v;
    }
    if (out->route_from < 0)
        return rs_error_set(err, RS_EINVAL, "view '%s': route needs from=F (the view whose routing to run, e.g. 0)",
                            spec);
    return 0;
}

/* One operation "name[:k=v,...]" (modified in place). */
static int parse_op(const char *spec, char *text, rs_view_spec *out, rs_error *err)
{
    rs_view_op *op = &out->ops[out->num_ops];
    char *colon = strchr(text, ':');
    if (colon)
        *colon = '\0';
    if (!strcmp(text, "pgd")) {
        op->kind = RS_OP_PGD;
        return parse_pgd(spec, colon ? colon + 1 : NULL, out, err);
    }
    if (!strcmp(text, "route")) {
        op->kind = RS_OP_ROUTE;
        return parse_route(spec, colon ? colon + 1 : NULL, out, err);
    }
    if (!strcmp(text, "base")) {
        op->kind = RS_OP_BASE;
        if (out->num_ops)
            return rs_error_set(err, RS_EINVAL, "view '%s': base must be the first operation", spec);
        return parse_base(spec, colon ? colon + 1 : NULL, op, err);
    }
    const op_syntax *syn = NULL;
    for (size_t i = 0; i < sizeof ops_syntax / sizeof *ops_syntax; i++)
        if (!strcmp(text, ops_syntax[i].name))
            syn = &ops_syntax[i];
    if (!syn)
        return rs_error_set(err, RS_EINVAL,
                            "view '%s': unknown operation '%s' (want clean, noise, crop, flip, rotate, translate, "
                            "jitter, corrupt, base, pgd, route)",
                            spec, text);
    op->kind = syn->kind;
    op_defaults(op);
    bool need_param = op->kind == RS_OP_NOISE || op->kind == RS_OP_ROTATE || op->kind == RS_OP_TRANSLATE;
    int seen = 0;
    char *save = NULL;
    for (char *kv = colon ? strtok_r(colon + 1, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return rs_error_set(err, RS_EINVAL, "view '%s': '%s' is not KEY=VALUE", spec, kv);
        *eq = '\0';
        bool known = false;
        for (int k = 0; syn->keys[k]; k++)
            known |= !strcmp(kv, syn->keys[k]);
        if (!known)
            return unknown_key(spec, syn->name, kv, syn->keys, err);
        int rc = parse_param(spec, op, kv, eq + 1, err);
        if (rc)
            return rc;
        seen++;
    }
    if (need_param && !seen)
        return rs_error_set(err, RS_EINVAL, "view '%s': %s needs a parameter (%s=...)", spec, syn->name,
                            syn->keys[0]);
    if (op->kind == RS_OP_CORRUPT && (op->p[0] < 0 || op->p[1] == 0))
        return rs_error_set(err, RS_EINVAL, "view '%s': corrupt needs name= and severity=", spec);
    return 0;
}

static bool geometric(rs_op_kind kind)
{
    return kind == RS_OP_CROP || kind == RS_OP_FLIP || kind == RS_OP_ROTATE || kind == RS_OP_TRANSLATE;
}

int rs_view_spec_parse(const char *text, rs_view_spec *out, rs_error *err)
{
    memset(out, 0, sizeof *out);
    out->base = -1;
    out->route_from = -1;
    if (!text[0] || strlen(text) >= sizeof out->text)
        return rs_error_set(err, RS_EINVAL, "view '%s': empty or longer than %zu characters", text,
                            sizeof out->text - 1);
    snprintf(out->text, sizeof out->text, "%s", text);
    size_t len = strlen(text);
    if (text[0] == '+' || text[len - 1] == '+' || strstr(text, "++"))
        return rs_error_set(err, RS_EINVAL, "view '%s': an empty operation between '+'", text);
    char buf[sizeof out->text];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *part = strtok_r(buf, "+", &save); part; part = strtok_r(NULL, "+", &save)) {
        if (out->num_ops == RS_VIEW_MAX_OPS)
            return rs_error_set(err, RS_EINVAL, "view '%s': more than %d operations", text, RS_VIEW_MAX_OPS);
        int rc = parse_op(text, part, out, err);
        if (rc)
            return rc;
        out->num_ops++;
    }
    if (out->num_ops == 0)
        return rs_error_set(err, RS_EINVAL, "view '%s': no operation", text);
    int corruptions = 0;
    for (int i = 0; i < out->num_ops; i++)
        corruptions += out->ops[i].kind == RS_OP_CORRUPT;
    if (corruptions > 1)
        return rs_error_set(err, RS_EINVAL, "view '%s': at most one corrupt operation", text);
    if (out->route_from >= 0 && out->ops[out->num_ops - 1].kind != RS_OP_ROUTE)
        return rs_error_set(err, RS_EINVAL, "view '%s': route must be the last operation", text);
    /* The attack's gradient runs the router's own choices (grad.h), so an attack in a
     * forced view would optimise another network than the one recorded. */
    if (out->route_from >= 0 && out->attack)
        return rs_error_set(err, RS_EINVAL,
                            "view '%s': a forced view cannot be attacked; attack view V and force it in a later "
                            "view with base:view=V+route:from=F", text);
    if (out->ops[0].kind == RS_OP_BASE) {
        out->base = (int)out->ops[0].p[0];
        /* The base view's geometry is the view's geometry: a further crop or rotation would
         * need a second map, and its match to view 0 would no longer be the base's. */
        for (int i = 1; i < out->num_ops; i++)
            if (geometric(out->ops[i].kind))
                return rs_error_set(err, RS_EINVAL,
                                    "view '%s': after base, only jitter, corrupt, noise, pgd and route may follow (the view keeps "
                                    "the geometry of view %d)", text, out->base);
    }
    return 0;
}

int rs_view_spec_check_base(const rs_view_spec *spec, int index, rs_error *err)
{
    if (spec->base >= index)
        return rs_error_set(err, RS_EINVAL, "view '%s': base view %d is not an earlier view (this is view %d)",
                            spec->text, spec->base, index);
    if (spec->route_from >= index)
        return rs_error_set(err, RS_EINVAL, "view '%s': route's from=%d is not an earlier view (this is view %d)",
                            spec->text, spec->route_from, index);
    return 0;
}

/* ---- drawing ---------------------------------------------------------------------- */

/* The generator seed of draw STREAM of (seed, image, view). */
static uint64_t stream_seed(uint64_t run_seed, int image, int view, int stream)
{
    return rs_seed_mix(rs_seed_mix(rs_seed_mix(rs_seed_mix(run_seed) ^ (uint64_t)(uint32_t)image) ^
                                   (uint64_t)(uint32_t)view) ^
                       (uint64_t)stream);
}

/* 3x3 affine as [a b c; d e f; 0 0 1]: out = m * n. */
static void compose(double m[6], const double n[6])
{
    double r[6] = {m[0] * n[0] + m[1] * n[3], m[0] * n[1] + m[1] * n[4], m[0] * n[2] + m[1] * n[5] + m[2],
                   m[3] * n[0] + m[4] * n[3], m[3] * n[1] + m[4] * n[4], m[3] * n[2] + m[4] * n[5] + m[5]};
    memcpy(m, r, sizeof r);
}

/* torchvision's RandomResizedCrop box: x0, y0, w, h in whole pixels. */
static void draw_crop(gsl_rng *rng, const rs_view_op *op, int W, int H, double box[4])
{
    double area = (double)W * H, log_lo = log(op->p[2]), log_hi = log(op->p[3]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (op->p[0] + (op->p[1] - op->p[0]) * gsl_rng_uniform(rng));
        double aspect = exp(log_lo + (log_hi - log_lo) * gsl_rng_uniform(rng));
        long w = lround(sqrt(target * aspect)), h = lround(sqrt(target / aspect));
        if (w > 0 && h > 0 && w <= W && h <= H) {
            box[1] = (double)gsl_rng_uniform_int(rng, (unsigned long)(H - h + 1));
            box[0] = (double)gsl_rng_uniform_int(rng, (unsigned long)(W - w + 1));
            box[2] = (double)w;
            box[3] = (double)h;
            return;
        }
    }
    box[0] = box[1] = 0;
    box[2] = W;
    box[3] = H;
}

void rs_view_draw(const rs_view_spec *spec, int width, int height, uint64_t run_seed, int image, int view,
                  rs_view *out)
{
    memset(out, 0, sizeof *out);
    double m[6] = {1, 0, 0, 0, 1, 0};
    out->crop[2] = width;
    out->crop[3] = height;
    out->jitter[0] = out->jitter[1] = out->jitter[2] = 1;
    out->noise_seed = stream_seed(run_seed, image, view, 1);
    out->attack_seed = stream_seed(run_seed, image, view, 2);
    out->base = spec->base;
    out->attacked = spec->attack;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, (unsigned long)stream_seed(run_seed, image, view, 0));
    double W = width, H = height, cx = W / 2, cy = H / 2;
    /* Each geometric op maps its output coordinates to its input; the view's map to the
     * source is their product, first op leftmost. */
    for (int i = 0; i < spec->num_ops; i++) {
        const rs_view_op *op = &spec->ops[i];
        switch (op->kind) {
        case RS_OP_CROP: {
            draw_crop(rng, op, width, height, out->crop);
            double n[6] = {out->crop[2] / W, 0, out->crop[0], 0, out->crop[3] / H, out->crop[1]};
            compose(m, n);
            break;
        }
        case RS_OP_FLIP:
            if (gsl_rng_uniform(rng) < op->p[0]) {
                double n[6] = {-1, 0, W, 0, 1, 0};
                compose(m, n);
                out->flipped = !out->flipped;
            }
            break;
        case RS_OP_ROTATE: {
            double deg = op->p[0] * (2 * gsl_rng_uniform(rng) - 1), a = deg * M_PI / 180;
            double c = cos(a), s = sin(a);
            double n[6] = {c, s, cx - c * cx - s * cy, -s, c, cy + s * cx - c * cy};
            compose(m, n);
            out->angle += deg;
            break;
        }
        case RS_OP_TRANSLATE: {
            double tx = op->p[0] * (2 * gsl_rng_uniform(rng) - 1), ty = op->p[0] * (2 * gsl_rng_uniform(rng) - 1);
            double n[6] = {1, 0, -tx, 0, 1, -ty};
            compose(m, n);
            out->shift[0] += tx;
            out->shift[1] += ty;
            break;
        }
        case RS_OP_JITTER:
            for (int k = 0; k < 3; k++)
                out->jitter[k] = 1 + op->p[k] * (2 * gsl_rng_uniform(rng) - 1);
            break;
        case RS_OP_NOISE:
            out->noise_sigma = op->p[0];
            break;
        case RS_OP_CORRUPT:
            out->corrupted = true;
            out->corrupt = (int)op->p[0];
            out->corrupt_severity = (int)op->p[1];
            out->corrupt_set = op->p[2] == RS_CSET_AUTO ? (int)rs_corrupt_default_set(height, width) : (int)op->p[2];
            out->corrupt_seed = stream_seed(run_seed, image, view, 3);
            break;
        case RS_OP_CLEAN:
        case RS_OP_BASE: /* out->base above; the geometry comes with rs_view_inherit */
        case RS_OP_PGD:  /* applied by the replay on the rendered pixels */
        case RS_OP_ROUTE: /* changes the forward pass, not the pixels */
            break;
        }
    }
    gsl_rng_free(rng);
    memcpy(out->affine, m, sizeof m);
    out->identity = m[0] == 1 && m[1] == 0 && m[2] == 0 && m[3] == 0 && m[4] == 1 && m[5] == 0;
}

void rs_view_inherit(rs_view *v, const rs_view *base)
{
    memcpy(v->affine, base->affine, sizeof v->affine);
    v->identity = base->identity;
    v->flipped = base->flipped;
    memcpy(v->crop, base->crop, sizeof v->crop);
    v->angle = base->angle;
    memcpy(v->shift, base->shift, sizeof v->shift);
}

/* ---- rendering -------------------------------------------------------------------- */

static float clip01(float v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* Bilinear sample of PLANE (H,W) at index coordinates (x, y); taps outside are zero. */
static float sample(const float *plane, int H, int W, double x, double y)
{
    double fx = floor(x), fy = floor(y);
    int x0 = (int)fx, y0 = (int)fy;
    double ax = x - fx, ay = y - fy;
    double v = 0;
    for (int dy = 0; dy < 2; dy++) {
        int yy = y0 + dy;
        if (yy < 0 || yy >= H)
            continue;
        double wy = dy ? ay : 1 - ay;
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx;
            if (xx < 0 || xx >= W)
                continue;
            v += wy * (dx ? ax : 1 - ax) * plane[(size_t)yy * W + xx];
        }
    }
    return (float)v;
}

static void jitter(const rs_view *v, float *img, int C, size_t plane)
{
    /* Brightness, contrast (towards the mean grey level), saturation (towards each
     * pixel's grey); grey images have no saturation to change. */
    static const float luma[3] = {0.299f, 0.587f, 0.114f};
    for (size_t i = 0; i < (size_t)C * plane; i++)
        img[i] = clip01(img[i] * (float)v->jitter[0]);
    double mean = 0;
    for (size_t p = 0; p < plane; p++) {
        if (C == 3)
            mean += luma[0] * img[p] + luma[1] * img[plane + p] + luma[2] * img[2 * plane + p];
        else
            mean += img[p];
    }
    mean /= (double)plane;
    for (size_t i = 0; i < (size_t)C * plane; i++)
        img[i] = clip01((float)((img[i] - mean) * v->jitter[1] + mean));
    if (C != 3)
        return;
    for (size_t p = 0; p < plane; p++) {
        float grey = luma[0] * img[p] + luma[1] * img[plane + p] + luma[2] * img[2 * plane + p];
        for (int c = 0; c < 3; c++)
            img[c * plane + p] = clip01((img[c * plane + p] - grey) * (float)v->jitter[2] + grey);
    }
}

static double gsl_uniform(void *rng)
{
    return gsl_rng_uniform(rng);
}

/* The corruption of V on IMG (C,H,W), its uniforms from mt19937 seeded by V's corrupt_seed. */
static int corrupt(const rs_view *v, float *img, int C, int H, int W)
{
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!g)
        return RS_ENOMEM;
    gsl_rng_set(g, (unsigned long)v->corrupt_seed);
    rs_corrupt_rng rng = {gsl_uniform, g};
    rs_error err;
    int rc = rs_corrupt_apply(v->corrupt, v->corrupt_severity, (rs_corrupt_set)v->corrupt_set, &rng, img, C, H, W,
                              &err);
    gsl_rng_free(g);
    return rc;
}

int rs_view_render(const rs_view *v, const float *src, int C, int H, int W, float *out)
{
    int rc = 0;
    size_t plane = (size_t)H * W;
    if (v->identity) {
        memcpy(out, src, sizeof(float) * C * plane);
    } else {
        const double *a = v->affine;
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                double xv = x + 0.5, yv = y + 0.5;
                double xs = a[0] * xv + a[1] * yv + a[2], ys = a[3] * xv + a[4] * yv + a[5];
                for (int c = 0; c < C; c++)
                    out[c * plane + (size_t)y * W + x] = sample(src + c * plane, H, W, xs - 0.5, ys - 0.5);
            }
        }
    }
    if (v->jitter[0] != 1 || v->jitter[1] != 1 || v->jitter[2] != 1)
        jitter(v, out, C, plane);
    if (v->corrupted)
        rc = corrupt(v, out, C, H, W);
    if (v->noise_sigma > 0) {
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(rng, (unsigned long)v->noise_seed);
        for (size_t i = 0; i < (size_t)C * plane; i++)
            out[i] = clip01(out[i] + (float)gsl_ran_gaussian_ziggurat(rng, v->noise_sigma));
        gsl_rng_free(rng);
    }
    return rc;
}

/* ---- correspondence --------------------------------------------------------------- */

/* Snaps values within 1e-9 of an integer to it, so that a centre that lands exactly on a
 * patch boundary in exact arithmetic is not pushed to the left/above by rounding. */
static double snap(double v)
{
    double r = nearbyint(v);
    return fabs(v - r) < 1e-9 ? r : v;
}

int rs_view_match(const rs_view *a, const rs_view *b, int height, int width, int patch, int16_t *match)
{
    int gh = height / patch, gw = width / patch, unmatched = 0;
    if (a->identity && b->identity) {
        for (int j = 0; j < gh * gw; j++)
            match[j] = (int16_t)j;
        return 0;
    }
    const double *A = a->affine, *B = b->affine;
    double det = A[0] * A[4] - A[1] * A[3];
    for (int r = 0; r < gh; r++) {
        for (int c = 0; c < gw; c++) {
            double xv = (c + 0.5) * patch, yv = (r + 0.5) * patch;
            double xs = B[0] * xv + B[1] * yv + B[2] - A[2], ys = B[3] * xv + B[4] * yv + B[5] - A[5];
            /* Source point into A's pixel coordinates: inverse of A's linear part. */
            double xa = snap((A[4] * xs - A[1] * ys) / det), ya = snap((-A[3] * xs + A[0] * ys) / det);
            int16_t m = -1;
            if (xa >= 0 && xa < width && ya >= 0 && ya < height)
                m = (int16_t)((int)floor(ya / patch) * gw + (int)floor(xa / patch));
            else
                unmatched++;
            match[r * gw + c] = m;
        }
    }
    return unmatched;
}

char *rs_view_params_json(const rs_view *v)
{
    char seed[24];
    snprintf(seed, sizeof seed, "%016llx", (unsigned long long)v->noise_seed);
    json_t *o = json_pack("{s:[f,f,f,f,f,f], s:b, s:[f,f,f,f], s:f, s:[f,f], s:[f,f,f], s:f, s:s}",
                          "affine", v->affine[0], v->affine[1], v->affine[2], v->affine[3], v->affine[4],
                          v->affine[5], "flip", v->flipped, "crop", v->crop[0], v->crop[1], v->crop[2], v->crop[3],
                          "angle", v->angle, "shift", v->shift[0], v->shift[1], "jitter", v->jitter[0],
                          v->jitter[1], v->jitter[2], "noise_sigma", v->noise_sigma, "noise_seed", seed);
    /* Only views that have them carry the new keys: the parameters of other views stay
     * byte for byte what earlier versions stored. */
    if (o && v->base >= 0 && json_object_set_new(o, "base", json_integer(v->base)))
        json_decref(o), o = NULL;
    if (o && v->corrupted) {
        snprintf(seed, sizeof seed, "%016llx", (unsigned long long)v->corrupt_seed);
        json_t *c = json_pack("{s:s, s:i, s:s, s:s}", "name", rs_corrupt_name(v->corrupt), "severity",
                              v->corrupt_severity, "set", rs_corrupt_set_name((rs_corrupt_set)v->corrupt_set),
                              "seed", seed);
        if (!c || json_object_set_new(o, "corrupt", c))
            json_decref(o), o = NULL;
    }
    if (o && v->attacked) {
        snprintf(seed, sizeof seed, "%016llx", (unsigned long long)v->attack_seed);
        if (json_object_set_new(o, "attack_seed", json_string(seed)))
            json_decref(o), o = NULL;
    }
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(o);
    return s;
}

/* ---- protocols -------------------------------------------------------------------- */

static void free_specs(char ***specs, int *count)
{
    for (int i = 0; i < *count; i++)
        free((*specs)[i]);
    free(*specs);
    *specs = NULL;
    *count = 0;
}

static int push(char ***specs, int *count, const char *text)
{
    char **grown = realloc(*specs, sizeof *grown * (size_t)(*count + 1));
    if (!grown)
        return -1;
    *specs = grown;
    if (!(grown[*count] = strdup(text)))
        return -1;
    (*count)++;
    return 0;
}

/* adversarial: "clean", then "base:view=0+pgd:eps=E,KEYS" for each E of EPS. */
static int adversarial_views(const char *attack, const char *eps, char ***specs, int *count, rs_error *err)
{
    attack = attack ? attack : RS_ADVERSARIAL_ATTACK;
    eps = eps ? eps : RS_ADVERSARIAL_EPS;
    if (strncmp(attack, "pgd", 3) || (attack[3] && attack[3] != ':') || strchr(attack, '+'))
        return rs_error_set(err, RS_EINVAL, "--attack '%s': want one pgd operation, e.g. %s", attack,
                            RS_ADVERSARIAL_ATTACK);
    const char *keys = attack[3] ? attack + 4 : "";
    if (!strncmp(keys, "eps=", 4) || strstr(keys, ",eps="))
        return rs_error_set(err, RS_EINVAL, "--attack '%s': the radii come from --eps, not eps=", attack);
    size_t len = strlen(eps);
    if (!len || eps[0] == ',' || eps[len - 1] == ',' || strstr(eps, ",,"))
        return rs_error_set(err, RS_EINVAL, "--eps '%s': an empty value between ','", eps);
    if (push(specs, count, "clean"))
        return RS_ENOMEM;
    char *buf = strdup(eps), *save = NULL;
    if (!buf)
        return RS_ENOMEM;
    int fail = 0;
    const char *prev = NULL;
    double prev_eps = 0;
    for (char *e = strtok_r(buf, ",", &save); e && !fail; e = strtok_r(NULL, ",", &save)) {
        char text[512];
        int n = snprintf(text, sizeof text, "base:view=0+pgd:eps=%s%s%s", e, keys[0] ? "," : "", keys);
        fail = n < 0 || (size_t)n >= sizeof text ? RS_EINVAL : push(specs, count, text) ? RS_ENOMEM : 0;
        if (fail == RS_EINVAL)
            rs_error_set(err, RS_EINVAL, "--attack '%s': too long", attack);
        /* The statistics read the views as a grid of growing eps (attack_stats.h): a run
         * whose radii do not grow would be recorded and then refused by every figure. */
        rs_view_spec parsed;
        if (!fail && !(fail = rs_view_spec_parse(text, &parsed, err))) {
            if (prev && !(parsed.pgd.eps > prev_eps))
                fail = rs_error_set(err, RS_EINVAL, "--eps '%s': the radii must increase strictly (%s after %s)",
                                    eps, e, prev);
            prev = e;
            prev_eps = parsed.pgd.eps;
        }
    }
    free(buf);
    return fail;
}

/* A ','-separated list of WHAT into ITEMS (a copy in BUF, which the caller frees): no empty
 * item. */
static int split_list(const char *what, const char *list, char **buf, char **items, int max, int *n, rs_error *err)
{
    size_t len = strlen(list);
    if (!len || list[0] == ',' || list[len - 1] == ',' || strstr(list, ",,"))
        return rs_error_set(err, RS_EINVAL, "%s '%s': an empty value between ','", what, list);
    if (!(*buf = strdup(list)))
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    char *save = NULL;
    *n = 0;
    for (char *s = strtok_r(*buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        if (*n == max)
            return rs_error_set(err, RS_EINVAL, "%s '%s': more than %d values", what, list, max);
        items[(*n)++] = s;
    }
    return 0;
}

/* corruptions: "clean", then each corruption at each severity, the set written out. */
static int corruption_views(const rs_protocol_args *args, char ***specs, int *count, rs_error *err)
{
    char *nbuf = NULL, *sbuf = NULL, *names[64], *sevs[8];
    int nn = 0, ns = 0;
    int rc = split_list("--corruptions", args->corruptions ? args->corruptions : RS_CORRUPT_DEFAULT, &nbuf, names, 64,
                        &nn, err);
    if (!rc)
        rc = split_list("--severities", args->severities ? args->severities : "1,2,3,4,5", &sbuf, sevs, 8, &ns, err);
    char set[16] = "";
    if (args->input_h > 0 && args->input_w > 0)
        snprintf(set, sizeof set, ",set=%s",
                 rs_corrupt_set_name(rs_corrupt_default_set(args->input_h, args->input_w)));
    if (!rc && push(specs, count, "clean"))
        rc = RS_ENOMEM;
    for (int i = 0; !rc && i < nn; i++)
        for (int k = 0; !rc && k < ns; k++) {
            char text[128];
            int len = snprintf(text, sizeof text, "corrupt:name=%s,severity=%s%s", names[i], sevs[k], set);
            rc = len < 0 || (size_t)len >= sizeof text ? rs_error_set(err, RS_EINVAL, "--corruptions: '%s' is not a "
                                                                      "corruption", names[i])
                 : push(specs, count, text) ? RS_ENOMEM : 0;
        }
    free(nbuf), free(sbuf);
    return rc;
}

/* intervene: "clean", the perturbation, the perturbation forced to view 0's routing in
 * every MoE block, then in each MoE block alone (when there are several). */
static int intervene_views(const rs_protocol_args *args, char ***specs, int *count, rs_error *err)
{
    const char *perturb = args->augment ? args->augment : RS_INTERVENE_PERTURB;
    rs_view_spec p;
    int rc = rs_view_spec_parse(perturb, &p, err);
    if (rc)
        return rc;
    if (p.base >= 0 || p.route_from >= 0)
        return rs_error_set(err, RS_EINVAL, "--augment '%s': the intervene protocol writes base: and route: itself; "
                            "give the perturbation alone (e.g. %s)", perturb, RS_INTERVENE_PERTURB);
    if (push(specs, count, "clean") || push(specs, count, perturb) || push(specs, count, "base:view=1+route:from=0"))
        return RS_ENOMEM;
    for (int i = 0; args->num_moe > 1 && i < args->num_moe && args->moe_blocks[i] < 32; i++) {
        char text[64];
        snprintf(text, sizeof text, "base:view=1+route:from=0,layers=%d", args->moe_blocks[i]);
        if (push(specs, count, text))
            return RS_ENOMEM;
    }
    return 0;
}

/* The views of --views CUSTOM into SPECS: specs separated by ';', with blanks around each
 * allowed, as `runs` prints them ("clean ; noise:severity=1"). */
static int custom_views(const char *custom, char ***specs, int *count, rs_error *err)
{
    if (!custom || !custom[0])
        return rs_error_set(err, RS_EINVAL, "protocol custom needs --views 'SPEC;SPEC;...'");
    char *buf = strdup(custom);
    if (!buf)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    int rc = 0;
    for (char *s = buf, *next; s && !rc; s = next) {
        if ((next = strchr(s, ';')))
            *next++ = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            s[--n] = '\0';
        if (!n)
            rc = rs_error_set(err, RS_EINVAL, "--views '%s': an empty view between ';'", custom);
        else if (push(specs, count, s))
            rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    free(buf);
    if (!rc && *count < 2)
        rc = rs_error_set(err, RS_EINVAL, "protocol custom needs at least two views, got '%s'%s", custom,
                          strchr(custom, ',') ? " (views are separated by ';', a view's parameters by ',')" : "");
    return rc;
}

int rs_protocol_views(const char *protocol, const rs_protocol_args *args, char ***specs, int *count,
                      rs_error *err)
{
    static const rs_protocol_args none = {0};
    args = args ? args : &none;
    const char *augment = args->augment, *custom = args->custom;
    *specs = NULL;
    *count = 0;
    int fail = 0;
    if (!strcmp(protocol, "pair")) {
        const char *aug = augment ? augment : RS_PAIR_AUGMENT;
        fail = push(specs, count, aug) || push(specs, count, aug);
    } else if (!strcmp(protocol, "noise")) {
        fail = push(specs, count, "clean");
        for (int k = 1; k <= 5 && !fail; k++) {
            char text[32];
            snprintf(text, sizeof text, "noise:severity=%d", k);
            fail = push(specs, count, text);
        }
    } else if (!strcmp(protocol, "adversarial")) {
        int rc = adversarial_views(args->attack, args->eps, specs, count, err);
        if (rc == RS_EINVAL) {
            free_specs(specs, count);
            return rc;
        }
        fail = rc;
    } else if (!strcmp(protocol, "intervene")) {
        int rc = intervene_views(args, specs, count, err);
        if (rc == RS_EINVAL) {
            free_specs(specs, count);
            return rc;
        }
        fail = rc;
    } else if (!strcmp(protocol, "corruptions")) {
        int rc = corruption_views(args, specs, count, err);
        if (rc == RS_EINVAL) {
            free_specs(specs, count);
            return rc;
        }
        fail = rc;
    } else if (!strcmp(protocol, "custom")) {
        int rc = custom_views(custom, specs, count, err);
        if (rc) {
            free_specs(specs, count);
            return rc;
        }
    } else {
        return rs_error_set(err, RS_EINVAL,
                            "unknown protocol '%s' (want pair, noise, custom, adversarial, intervene or corruptions)",
                            protocol);
    }
    if (fail) {
        free_specs(specs, count);
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    /* Parse every spec now, so a typo fails before any work starts. */
    for (int i = 0; i < *count; i++) {
        rs_view_spec parsed;
        int rc = rs_view_spec_parse((*specs)[i], &parsed, err);
        if (!rc)
            rc = rs_view_spec_check_base(&parsed, i, err);
        if (rc) {
            free_specs(specs, count);
            return rc;
        }
    }
    return 0;
}
