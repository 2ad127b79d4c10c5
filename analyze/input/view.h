/* view.h — views of an image (clean, noisy, augmented) and the patch correspondence
 * between two views. Contracts in docs/views.md.
 *
 * A view spec is text: operations chained with '+', each NAME or NAME:KEY=VALUE,...
 *   clean                          the image as it is
 *   noise:sigma=S | noise:severity=K   Gaussian noise on [0,1] pixels, then clipped;
 *                                  severity 1..5 = ImageNet-C sigma 0.08 0.12 0.18 0.26 0.38
 *   crop:area=A-B,ratio=R1-R2      inception crop (area fraction in [A,B], aspect ratio
 *                                  log-uniform in [R1,R2], 10 tries then the whole image),
 *                                  resized back to the input size
 *   flip:p=P                       horizontal flip with probability P
 *   rotate:deg=D                   rotation about the centre, uniform in [-D, D] degrees
 *   translate:px=P                 shift, uniform in [-P, P] pixels on each axis
 *   jitter:b=B,c=C,s=S             brightness, contrast, saturation factors uniform in
 *                                  [1-x, 1+x], applied in that order, each clipped to [0,1]
 *   corrupt:name=NAME,severity=K[,set=imagenet|cifar]
 *                                  an ImageNet-C / CIFAR-10-C corruption (corrupt.h,
 *                                  docs/corruptions.md), pixels only; set defaults to cifar
 *                                  for images <= 64 px, imagenet above; at most one
 *   base:view=V                    only as the first operation: start from the final pixels
 *                                  and the geometry of the earlier view V (its match to view
 *                                  0 is V's); only photometric, noise, pgd and route may follow
 *   pgd:eps=E,steps=N,alpha=A,norm=linf|l2,start=random|zero,mode=pgd|vmoe,
 *       loss=...,beta=B,target=T,layers=B1/B2
 *                                  an adversarial attack on the model (analyze/replay/attack.h),
 *                                  always applied last; docs/attacks.md
 *   route:from=F,layers=B1/B2      a routing intervention, the last operation: no pixel
 *                                  changes, but each matched patch runs the experts the
 *                                  earlier view F ran there (forward.h, forced routing), in
 *                                  the MoE blocks of layers= (default all); never with pgd
 * Geometric operations compose into one affine map from view pixel coordinates to source
 * coordinates (continuous, pixel centres at i + 0.5); the view is rendered by bilinear
 * sampling of the model-sized source (zero outside it). Photometric operations follow,
 * then the corruption, and noise always comes last, whatever its place in the spec.
 *
 * Random draws come from GSL generators seeded from (run seed, image index, view index)
 * only, so a view never depends on threads, batch size or order. The attack's random start
 * has its own stream of the same seed (rs_view.attack_seed). */
#ifndef RS_VIEW_H
#define RS_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "grad.h"
#include "rs_error.h"

#define RS_VIEW_MAX_OPS 16

typedef enum rs_op_kind {
    RS_OP_CLEAN, RS_OP_NOISE, RS_OP_CROP, RS_OP_FLIP, RS_OP_ROTATE, RS_OP_TRANSLATE, RS_OP_JITTER,
    RS_OP_BASE, RS_OP_PGD, RS_OP_ROUTE, RS_OP_CORRUPT
} rs_op_kind;

typedef enum rs_attack_norm { RS_ATTACK_LINF, RS_ATTACK_L2 } rs_attack_norm;

/* A view's `pgd:` operation, defaults resolved (docs/attacks.md). Pixel units: eps and
 * alpha are distances on [0,1] pixels. */
#define RS_ATTACK_MAX_STEPS 10000
typedef struct rs_attack_spec {
    double eps;             /* radius of the ball around the start pixels (>= 0) */
    double alpha;           /* step size: pgd default 2.5 * eps / steps, vmoe eps / steps */
    int steps;              /* 1 .. RS_ATTACK_MAX_STEPS; pgd default 10, vmoe 40 */
    rs_attack_norm norm;    /* linf (default) or l2 */
    bool random_start;      /* pgd default true; vmoe false */
    bool vmoe;              /* mode=vmoe: sign steps of eps/steps, no projection, no clip */
    /* The objective (loss, beta, target, layers: model/grad.h), parsed; pgd default
     * loss=router, vmoe loss=ce. What depends on the model (target < E, layers are MoE
     * blocks) is checked with rs_objective_check once the model is known. */
    rs_objective objective;
} rs_attack_spec;

typedef struct rs_view_op {
    rs_op_kind kind;
    double p[4]; /* noise: sigma; crop: area lo, hi, ratio lo, hi; flip: p; rotate: deg;
                    translate: px; jitter: b, c, s; corrupt: id (corrupt.h), severity,
                    set (rs_corrupt_set) */
} rs_view_op;

typedef struct rs_view_spec {
    char text[256];
    int num_ops;
    rs_view_op ops[RS_VIEW_MAX_OPS]; /* base: p[0] = V; pgd: the op's place only */
    int base;                   /* base:view=V: V, else -1 */
    bool attack;                /* has a pgd: operation (at most one), described by pgd */
    rs_attack_spec pgd;
    int route_from;             /* route:from=F: F, else -1 */
    unsigned route_blocks;      /* route's layers=: bit b = block b; 0 = every MoE block
                                 * (checked against the model with rs_config_check_moe_blocks) */
} rs_view_spec;

/* Parses TEXT. Numbers are read by rs_number.h (decimal only, no blanks). Errors quote
 * the spec and the part at fault: "view 'noise:sigma=abc': sigma 'abc' is not a number". Whether a base view and a route
 * source are earlier views is checked by rs_view_spec_check_base, which knows the view's
 * index. */
int rs_view_spec_parse(const char *text, rs_view_spec *out, rs_error *err);

/* RS_EINVAL unless SPEC's base and route source (if any) are views before INDEX. */
int rs_view_spec_check_base(const rs_view_spec *spec, int index, rs_error *err);

/* One drawn view of one image. */
typedef struct rs_view {
    double affine[6];   /* xs = a0*x + a1*y + a2, ys = a3*x + a4*y + a5 (view -> source) */
    bool identity;      /* no geometric change: patch j matches patch j */
    bool flipped;
    double crop[4];     /* x0, y0, w, h of the last crop in its input, or the whole image */
    double angle, shift[2];
    double jitter[3];   /* drawn factors, 1 when absent */
    double noise_sigma; /* 0 when absent */
    uint64_t noise_seed;
    int base;           /* the view whose pixels and geometry this view starts from, -1 none */
    bool corrupted;     /* the spec has a corrupt operation, described by the next three */
    int corrupt;        /* corrupt.h's id */
    int corrupt_severity, corrupt_set; /* 1..5; rs_corrupt_set, resolved for the image size */
    uint64_t corrupt_seed; /* seed of the corruption's generator */
    bool attacked;      /* the spec has a pgd operation */
    uint64_t attack_seed; /* seed of the pgd random start's generator */
} rs_view;

/* Draws SPEC's random parameters for an image of WIDTH x HEIGHT. */
void rs_view_draw(const rs_view_spec *spec, int width, int height, uint64_t run_seed, int image, int view,
                  rs_view *out);

/* Gives V the geometry (affine map, flip, crop, angle, shift) of its base view BASE, after
 * V was rendered from BASE's pixels: V's correspondence to view 0 is then BASE's. */
void rs_view_inherit(rs_view *v, const rs_view *base);

/* OUT (C,H,W) = the view of SRC (C,H,W), both [0,1] pixels; OUT must not alias SRC. For a
 * view with a base, SRC is the base view's final pixels. The pgd operation is not applied
 * here (it needs the model: replay.c runs analyze/replay/attack.h on the rendered pixels).
 * Returns 0, or RS_ENOMEM when a corruption could not get its scratch memory (OUT is then
 * the view without the corruption). */
int rs_view_render(const rs_view *v, const float *src, int channels, int height, int width, float *out);

/* For every patch j of view B (raster order over the H/P x W/P grid), the patch of view A
 * that contains the source point of j's centre, or -1 when that point falls outside A.
 * A point on a patch boundary belongs to the patch right of / below it. Returns the
 * number of unmatched patches. */
int rs_view_match(const rs_view *a, const rs_view *b, int height, int width, int patch, int16_t *match);

/* The drawn parameters as compact JSON (caller frees; NULL when out of memory), for the
 * store (docs/store.md). Groups of keys at their defaults are left out: affine, flip,
 * crop, angle and shift where the geometry is untouched (the identity map, no flip, the
 * whole image, 0, (0, 0)); jitter where it is (1, 1, 1); noise_sigma and noise_seed where
 * there is no noise (sigma 0, no noise stream drawn). So a clean view's is {}. */
char *rs_view_params_json(const rs_view *v);

/* The view specs of a protocol: "pair" (two views of AUGMENT, default
 * RS_PAIR_AUGMENT), "noise" (clean and severities 1..5), "custom" (CUSTOM: specs
 * separated by ';', the first the reference), "adversarial" (view 0 "clean", then
 * "base:view=0+pgd:eps=E,KEYS" for each E of EPS, a ','-separated, strictly increasing
 * list of numbers or fractions (default RS_ADVERSARIAL_EPS; RS_EINVAL "--eps '8/255,1/255':
 * the radii must increase strictly (1/255 after 8/255)"), KEYS the keys of ATTACK, a "pgd:..." spec
 * without eps (default RS_ADVERSARIAL_ATTACK)) or "intervene" (view 0 "clean", view 1 the
 * perturbation AUGMENT (default RS_INTERVENE_PERTURB; no base or route of its own), view 2
 * "base:view=1+route:from=0", then with two or more MOE_BLOCKS one
 * "base:view=1+route:from=0,layers=B" per MoE block B) or "corruptions" (view 0 "clean",
 * then "corrupt:name=N,severity=K,set=S" for each N of CORRUPTIONS (default
 * RS_CORRUPT_DEFAULT) and each K of SEVERITIES (default "1,2,3,4,5"), S the default set of
 * an INPUT_H x INPUT_W model, written out). Every spec is parsed before returning. *SPECS: owned array of *COUNT owned strings (free each, then the array). */
#define RS_PAIR_AUGMENT "crop:area=0.05-1,ratio=0.75-1.333+flip:p=0.5"
#define RS_ADVERSARIAL_ATTACK "pgd:steps=10,loss=router"
#define RS_ADVERSARIAL_EPS "1/255,2/255,4/255,8/255"
#define RS_INTERVENE_PERTURB "noise:severity=1"
typedef struct rs_protocol_args {
    const char *augment;        /* pair: both views; intervene: the perturbation */
    const char *custom;         /* custom */
    const char *attack, *eps;   /* adversarial; NULL: the defaults */
    const int *moe_blocks;      /* intervene: the model's MoE blocks (NULL: none named) */
    int num_moe;
    const char *corruptions, *severities; /* corruptions; NULL: the defaults */
    int input_h, input_w;       /* corruptions: the model's input, for set= (0: no set=,
                                 * the image's size decides when drawn) */
} rs_protocol_args;
int rs_protocol_views(const char *protocol, const rs_protocol_args *args, char ***specs, int *count,
                      rs_error *err);

#endif
