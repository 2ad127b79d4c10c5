/* Views: spec parsing, random draws, rendering, noise statistics and the patch
 * correspondence rule of docs/views.md, on cases worked out by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "testutil.h"
#include "input/view.h"

static rs_view identity_view(void)
{
    rs_view v = {.affine = {1, 0, 0, 0, 1, 0}, .identity = true, .jitter = {1, 1, 1}};
    return v;
}

/* A view whose pixels show the source box (x0, y0, w, h) of a W x H image. */
static rs_view crop_view(double x0, double y0, double w, double h, int W, int H)
{
    rs_view v = identity_view();
    double a[6] = {w / W, 0, x0, 0, h / H, y0};
    memcpy(v.affine, a, sizeof a);
    v.identity = false;
    return v;
}

static void expect_parse_error(const char *text, const char *fragment)
{
    rs_view_spec spec;
    rs_error err = {0};
    assert_int_equal(rs_view_spec_parse(text, &spec, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    if (!strstr(err.msg, fragment))
        fail_msg("'%s' lacks '%s'", err.msg, fragment);
}

static void test_parse(void **state)
{
    (void)state;
    rs_view_spec s;
    rs_error err;
    assert_int_equal(rs_view_spec_parse("crop:area=0.25-1,ratio=0.75-1.333+flip:p=0.5", &s, &err), 0);
    assert_int_equal(s.num_ops, 2);
    assert_int_equal(s.ops[0].kind, RS_OP_CROP);
    assert_float_equal(s.ops[0].p[0], 0.25, 1e-12);
    assert_float_equal(s.ops[0].p[3], 1.333, 1e-12);
    assert_int_equal(s.ops[1].kind, RS_OP_FLIP);
    assert_int_equal(rs_view_spec_parse("noise:severity=3", &s, &err), 0);
    assert_float_equal(s.ops[0].p[0], 0.18, 1e-12);
    assert_int_equal(rs_view_spec_parse("crop", &s, &err), 0); /* defaults: PRC's crop */
    assert_float_equal(s.ops[0].p[0], 0.05, 1e-12);
    assert_int_equal(rs_view_spec_parse("jitter:b=0.4,c=0.4,s=0.4+rotate:deg=15+translate:px=4", &s, &err), 0);
    assert_int_equal(s.num_ops, 3);

    expect_parse_error("noise:sigma=abc", "sigma 'abc' is not a number");
    expect_parse_error("noise:severity=6", "severity must be 1, 2, 3, 4 or 5");
    expect_parse_error("blur:r=2", "unknown operation 'blur'");
    expect_parse_error("flip:q=1", "flip has no parameter 'q' (flip takes p)");
    /* a typo names the closest key and every key; one far from all names none */
    expect_parse_error("noise:sgima=0.1", "view 'noise:sgima=0.1': noise has no parameter 'sgima' (did you mean "
                                          "'sigma'? noise takes sigma, severity)");
    expect_parse_error("crop:area=0.5-1,aspect=1", "crop has no parameter 'aspect' (crop takes area, ratio)");
    expect_parse_error("jitter:b=0.1,h=0.1", "jitter has no parameter 'h' (jitter takes b, c, s)");
    expect_parse_error("clean:x=1", "clean has no parameter 'x' (clean takes none)");
    expect_parse_error("corrupt:name=fog,sevrity=2", "did you mean 'severity'? corrupt takes name, severity, set)");
    expect_parse_error("crop:area=0-1", "area must lie in (0, 1]");
    expect_parse_error("crop:area=0.9-0.2", "runs backwards");
    expect_parse_error("noise", "noise needs a parameter");
    expect_parse_error("flip:p=2", "p 2 outside [0, 1]");
    expect_parse_error("flip:p", "'p' is not KEY=VALUE");
    expect_parse_error("noise:", "noise needs a parameter");
    expect_parse_error("clean++flip", "empty operation");
    expect_parse_error("crop:area=0.5x", "not a number or a range");
    assert_int_equal(rs_view_spec_parse("crop:ratio=1e-1-1e1", &s, &err), 0); /* exponents are numbers */
    assert_float_equal(s.ops[0].p[2], 0.1, 1e-12);
    assert_float_equal(s.ops[0].p[3], 10, 1e-12);
    assert_int_equal(rs_view_spec_parse("noise:sigma=1e-3+flip:p=.5", &s, &err), 0);
    assert_float_equal(s.ops[0].p[0], 1e-3, 1e-15);
    /* Numbers are decimal: no hex, no blanks around them, no inf or nan. */
    expect_parse_error("noise:sigma=0x1", "sigma '0x1' is not a number");
    expect_parse_error("noise:sigma= 0.1", "sigma ' 0.1' is not a number");
    expect_parse_error("noise:sigma=0.1 ", "sigma '0.1 ' is not a number");
    expect_parse_error("noise:sigma=infinity", "sigma 'infinity' is not a number");
    expect_parse_error("flip:p=nan", "p 'nan' is not a number");
    expect_parse_error("crop:area=0x0.5-1", "area '0x0.5-1' is not a number or a range");
    expect_parse_error("crop:area=0.5- 1", "area '0.5- 1' is not a number or a range");
}

/* A message too long for rs_error keeps its reason: the quoted spec is what gets cut. */
static void test_long_spec_keeps_its_reason(void **state)
{
    (void)state;
    char text[512] = "";
    for (int i = 0; i < 30; i++)
        strcat(text, i ? "+flip:p=0.5" : "flip:p=0.5");
    rs_view_spec s;
    rs_error err = {0};
    assert_int_equal(rs_view_spec_parse(text, &s, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "view 'flip:p=0.5+flip:p=0.5+"));
    const char *reason = "': empty or longer than 255 characters";
    size_t n = strlen(err.msg), r = strlen(reason);
    assert_true(n >= r && !strcmp(err.msg + n - r, reason));
    /* A long value quoted after a long spec: the reason survives too. */
    memset(text, 0, sizeof text);
    strcpy(text, "noise:sigma=");
    memset(text + strlen(text), '7', 200);
    strcat(text, "x");
    assert_int_equal(rs_view_spec_parse(text, &s, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    reason = "7x' is not a number";
    n = strlen(err.msg), r = strlen(reason);
    assert_true(n >= r && !strcmp(err.msg + n - r, reason));
}

static void test_parse_pgd(void **state)
{
    (void)state;
    rs_view_spec s;
    rs_error err;
    /* Defaults, and pgd last whatever its place. */
    assert_int_equal(rs_view_spec_parse("pgd:eps=4/255+noise:sigma=0.1", &s, &err), 0);
    assert_true(s.attack);
    assert_int_equal(s.base, -1);
    assert_float_equal(s.pgd.eps, 4.0 / 255, 1e-15);
    assert_int_equal(s.pgd.steps, 10);
    assert_float_equal(s.pgd.alpha, 2.5 * 4.0 / 255 / 10, 1e-15);
    assert_int_equal(s.pgd.norm, RS_ATTACK_LINF);
    assert_true(s.pgd.random_start);
    assert_false(s.pgd.vmoe);
    assert_int_equal(s.pgd.objective.num_terms, 1);
    assert_int_equal(s.pgd.objective.term[0], RS_OBJ_ROUTER);
    assert_int_equal(rs_view_spec_parse("crop:area=0.5-1+pgd:eps=0.5,steps=3,alpha=1/10,norm=l2,start=zero,"
                                        "loss=ce&router,beta=0.5,layers=1/3", &s, &err), 0);
    assert_int_equal(s.pgd.steps, 3);
    assert_float_equal(s.pgd.alpha, 0.1, 1e-15);
    assert_int_equal(s.pgd.norm, RS_ATTACK_L2);
    assert_false(s.pgd.random_start);
    assert_int_equal(s.pgd.objective.num_terms, 2);
    assert_int_equal(s.pgd.objective.term[1], RS_OBJ_ROUTER);
    assert_float_equal(s.pgd.objective.beta, 0.5, 0);
    assert_int_equal(s.pgd.objective.block_mask, (1u << 1) | (1u << 3));
    /* vmoe mode: 40 sign steps of eps/40 from the start pixels, cross-entropy. */
    assert_int_equal(rs_view_spec_parse("pgd:eps=8/255,mode=vmoe", &s, &err), 0);
    assert_true(s.pgd.vmoe);
    assert_int_equal(s.pgd.steps, 40);
    assert_float_equal(s.pgd.alpha, 8.0 / 255 / 40, 1e-15);
    assert_false(s.pgd.random_start);
    assert_int_equal(s.pgd.objective.term[0], RS_OBJ_CE);
    assert_int_equal(rs_view_spec_parse("pgd:mode=vmoe,eps=0.1,loss=router,steps=4", &s, &err), 0);
    assert_int_equal(s.pgd.objective.term[0], RS_OBJ_ROUTER);
    assert_float_equal(s.pgd.alpha, 0.025, 1e-15);

    expect_parse_error("pgd:eps=-1", "view 'pgd:eps=-1': eps -1 outside");
    expect_parse_error("pgd:eps=4/255,loss=foo", "view 'pgd:eps=4/255,loss=foo': loss");
    expect_parse_error("pgd:eps=4/255,loss=foo", "foo");
    expect_parse_error("pgd:eps=4/255,steps=0", "steps '0' is not an integer in [1, 10000]");
    expect_parse_error("pgd:eps=4/255,steps=2.5", "steps '2.5' is not an integer");
    expect_parse_error("pgd:eps=4/255,alpha=abc", "alpha 'abc' is not a number or a fraction A/B");
    expect_parse_error("pgd:eps=4/0", "eps '4/0' is not a number or a fraction A/B");
    expect_parse_error("pgd:eps=4/255/2", "eps '4/255/2' is not a number or a fraction");
    expect_parse_error("pgd:eps=0x10", "eps '0x10' is not a number or a fraction A/B");
    expect_parse_error("pgd:eps= 1/255", "eps ' 1/255' is not a number or a fraction A/B");
    expect_parse_error("pgd:eps=1/ 255", "eps '1/ 255' is not a number or a fraction A/B");
    expect_parse_error("pgd:eps=1/255,steps= 3", "steps ' 3' is not");
    expect_parse_error("pgd:eps=1/255,beta=0x1", "beta: '0x1' is not a finite number");
    expect_parse_error("pgd:eps=1/255,loss=router-target,target= 1", "target: ' 1' is not an expert index");
    expect_parse_error("pgd:eps=1/255,layers=1/1", "layers: '1/1' names block 1 twice");
    assert_int_equal(rs_view_spec_parse("pgd:eps=0.0157,alpha=1e-3", &s, &err), 0);
    assert_float_equal(s.pgd.eps, 0.0157, 0);
    assert_float_equal(s.pgd.alpha, 1e-3, 0);
    expect_parse_error("pgd:steps=10", "pgd needs eps=E");
    expect_parse_error("pgd", "pgd needs eps=E");
    expect_parse_error("pgd:eps=1/255,norm=l3", "norm 'l3' is not linf or l2");
    expect_parse_error("pgd:eps=1/255,start=middle", "start 'middle' is not random or zero");
    expect_parse_error("pgd:eps=1/255,mode=fgsm", "mode 'fgsm' is not pgd or vmoe");
    expect_parse_error("pgd:eps=1/255,eps=2/255", "pgd's eps is given twice");
    expect_parse_error("pgd:eps=1/255,restart=2", "pgd has no parameter 'restart' (pgd takes eps, steps, alpha, loss, "
                                                  "beta, target, norm, start, mode, layers)");
    expect_parse_error("pgd:eps=1/255,stpes=3", "pgd has no parameter 'stpes' (did you mean 'steps'? pgd takes");
    expect_parse_error("pgd:eps=1/255,layers=1-3", "layers");
    expect_parse_error("pgd:eps=1/255+pgd:eps=2/255", "more than one pgd operation");
    expect_parse_error("pgd:eps=1/255,mode=vmoe,alpha=1/255", "mode=vmoe takes no alpha");
    expect_parse_error("pgd:eps=1/255,mode=vmoe,norm=l2", "mode=vmoe takes no norm");
    expect_parse_error("pgd:eps=1/255,mode=vmoe,start=random", "mode=vmoe takes no start=random");
}

static void test_parse_base(void **state)
{
    (void)state;
    rs_view_spec s;
    rs_error err;
    assert_int_equal(rs_view_spec_parse("base:view=2+noise:sigma=0.1+jitter:b=0.1", &s, &err), 0);
    assert_int_equal(s.base, 2);
    assert_false(s.attack);
    assert_int_equal(rs_view_spec_check_base(&s, 3, &err), 0);
    assert_int_equal(rs_view_spec_check_base(&s, 2, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "base view 2 is not an earlier view (this is view 2)"));
    expect_parse_error("clean+base:view=0", "base must be the first operation");
    expect_parse_error("base:view=0+flip:p=1", "after base, only jitter, corrupt, noise, pgd and route may follow");
    expect_parse_error("base:view=-1", "base view '-1' is not a view index");
    expect_parse_error("base:view=x", "view 'x' is not a number");
    expect_parse_error("base:view=0x1", "view '0x1' is not a number");
    expect_parse_error("base:view= 1", "view ' 1' is not a number");
    expect_parse_error("base", "base takes one key, view=V");
    expect_parse_error("base:view=0,p=1", "base takes one key, view=V");

    /* A based view draws its own noise and takes its base's geometry. */
    rs_view_spec crop, based;
    assert_int_equal(rs_view_spec_parse("crop:area=0.3-0.6+flip:p=1", &crop, &err), 0);
    assert_int_equal(rs_view_spec_parse("base:view=1+noise:sigma=0.2+pgd:eps=1/255", &based, &err), 0);
    rs_view a, b, b_alone;
    rs_view_draw(&crop, 28, 28, 5, 9, 1, &a);
    rs_view_draw(&based, 28, 28, 5, 9, 2, &b);
    assert_true(b.identity);
    assert_int_equal(b.base, 1);
    assert_true(b.attacked);
    assert_true(b.noise_seed != a.noise_seed && b.attack_seed != b.noise_seed);
    b_alone = b;
    rs_view_inherit(&b, &a);
    assert_memory_equal(b.affine, a.affine, sizeof a.affine);
    assert_true(b.flipped && !b.identity);
    assert_true(b.noise_sigma == 0.2 && b.noise_seed == b_alone.noise_seed);
    char *json = rs_view_params_json(&b);
    assert_non_null(strstr(json, "\"base\":1"));
    assert_non_null(strstr(json, "\"attack_seed\":\""));
    free(json);
    json = rs_view_params_json(&a); /* other views' parameters keep their old keys */
    assert_null(strstr(json, "base"));
    assert_null(strstr(json, "attack_seed"));
    free(json);
}

static void test_parse_route(void **state)
{
    (void)state;
    rs_view_spec s;
    rs_error err;
    assert_int_equal(rs_view_spec_parse("clean", &s, &err), 0);
    assert_int_equal(s.route_from, -1);
    assert_int_equal(rs_view_spec_parse("base:view=1+route:from=0", &s, &err), 0);
    assert_int_equal(s.base, 1);
    assert_int_equal(s.route_from, 0);
    assert_int_equal(s.route_blocks, 0u); /* every MoE block */
    assert_int_equal(rs_view_spec_parse("base:view=2+noise:severity=1+route:layers=3/1,from=1", &s, &err), 0);
    assert_int_equal(s.route_from, 1);
    assert_int_equal(s.route_blocks, (1u << 1) | (1u << 3));
    assert_int_equal(rs_view_spec_check_base(&s, 3, &err), 0);
    /* A route source is an earlier view, like a base. */
    assert_int_equal(rs_view_spec_parse("base:view=0+route:from=1", &s, &err), 0);
    assert_int_equal(rs_view_spec_check_base(&s, 1, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "route's from=1 is not an earlier view (this is view 1)"));
    /* Route moves no pixels: the view draws as its other operations say. */
    rs_view v;
    assert_int_equal(rs_view_spec_parse("route:from=0", &s, &err), 0);
    rs_view_draw(&s, 28, 28, 1, 2, 3, &v);
    assert_true(v.identity && v.noise_sigma == 0 && !v.attacked);

    expect_parse_error("base:view=1+route", "route needs from=F");
    expect_parse_error("base:view=1+route:layers=1", "route needs from=F");
    expect_parse_error("base:view=1+route:from=x", "from 'x' is not a number");
    expect_parse_error("base:view=1+route:from=-1", "route's from '-1' is not a view index");
    expect_parse_error("base:view=1+route:from=0.5", "route's from '0.5' is not a view index");
    expect_parse_error("base:view=1+route:from=0,from=0", "route's from is given twice");
    expect_parse_error("base:view=1+route:from=0,layers=1,layers=3", "route's layers is given twice");
    expect_parse_error("base:view=1+route:from=0,layers=1-3", "layers: '1-3' is not block indices 0..31");
    expect_parse_error("base:view=1+route:from=0,layers=32", "layers: '32' is not block indices 0..31");
    expect_parse_error("base:view=1+route:from=0,layers=", "layers: '' is not block indices");
    expect_parse_error("base:view=1+route:from=0,layers=1/1", "layers: '1/1' names block 1 twice");
    expect_parse_error("base:view=1+route:from=0,layers=3/1/3", "layers: '3/1/3' names block 3 twice");
    expect_parse_error("base:view=1+route:from=0x0", "from '0x0' is not a number");
    expect_parse_error("base:view=1+route:from=0,k=2", "route has no parameter 'k' (route takes from, layers)");
    expect_parse_error("base:view=1+route:from=0,2", "'2' is not KEY=VALUE");
    expect_parse_error("base:view=1+route:from=0+route:from=0", "more than one route operation");
    expect_parse_error("route:from=0+noise:severity=1", "route must be the last operation");
    expect_parse_error("base:view=0+pgd:eps=1/255+route:from=0", "a forced view cannot be attacked");
    expect_parse_error("base:view=0+route:from=0+pgd:eps=1/255", "route must be the last operation");
    expect_parse_error("rout:from=0", "unknown operation 'rout' (want clean, noise, crop, flip, rotate, translate, "
                                      "jitter, corrupt, base, pgd, route)");
}

static void test_flip_maps_columns(void **state)
{
    (void)state;
    rs_view_spec spec;
    rs_error err;
    assert_int_equal(rs_view_spec_parse("flip:p=1", &spec, &err), 0);
    rs_view a = identity_view(), b;
    rs_view_draw(&spec, 28, 28, 1, 0, 1, &b);
    assert_true(b.flipped);
    int16_t match[49];
    assert_int_equal(rs_view_match(&a, &b, 28, 28, 4, match), 0);
    for (int r = 0; r < 7; r++)
        for (int c = 0; c < 7; c++)
            assert_int_equal(match[r * 7 + c], r * 7 + (6 - c));
    /* Both views flipped: patch for patch. */
    assert_int_equal(rs_view_match(&b, &b, 28, 28, 4, match), 0);
    for (int j = 0; j < 49; j++)
        assert_int_equal(match[j], j);
}

/* A drawn flip (rs_view_draw of "flip:p=1") on W x H = 5 x 3 and 4 x 3 (odd and even
 * widths), two channels. Pixel centre x + 0.5 maps to W − (x + 0.5) (docs/views.md: the
 * map sends view coordinates to source coordinates, pixel centres at i + 0.5), which is
 * the centre of source column W − 1 − x, so the map is exactly [−1 0 W; 0 1 0] and every
 * rendered pixel is its mirror's value, bit for bit (the bilinear weights are 1 and 0). A
 * map one pixel off (W − 1 for W) lands on column W − 2 − x: wrong values everywhere and
 * a zero in the last column. A flip after a crop mirrors the crop's output. */
static void test_flip_pixel_exact(void **state)
{
    (void)state;
    rs_view_spec spec;
    rs_error err;
    assert_int_equal(rs_view_spec_parse("flip:p=1", &spec, &err), 0);
    enum { H = 3, C = 2 };
    for (int W = 4; W <= 5; W++) {
        rs_view v;
        rs_view_draw(&spec, W, H, 7, 0, 1, &v);
        assert_true(v.flipped && !v.identity);
        const double want[6] = {-1, 0, W, 0, 1, 0};
        for (int q = 0; q < 6; q++)
            if (v.affine[q] != want[q])
                fail_msg("W %d: affine[%d] = %g, want %g", W, q, v.affine[q], want[q]);
        /* Source coordinates of every pixel centre. */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double xv = x + 0.5, yv = y + 0.5;
                double xs = v.affine[0] * xv + v.affine[1] * yv + v.affine[2];
                double ys = v.affine[3] * xv + v.affine[4] * yv + v.affine[5];
                if (xs != W - 1 - x + 0.5 || ys != yv)
                    fail_msg("W %d: centre (%d, %d) maps to (%g, %g), want (%g, %g)", W, x, y, xs, ys,
                             W - 1 - x + 0.5, yv);
            }
        /* An asymmetric image: every value distinct and nonzero. */
        float src[C * H * 5], out[C * H * 5];
        for (int i = 0; i < C * H * W; i++)
            src[i] = (float)(i + 1) / 64;
        rs_view_render(&v, src, C, H, W, out);
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float got = out[(c * H + y) * W + x], mirror = src[(c * H + y) * W + (W - 1 - x)];
                    if (got != mirror)
                        fail_msg("W %d: channel %d pixel (%d, %d) is %g, its mirror %g", W, c, x, y, got, mirror);
                }
        /* Patches of one pixel: view pixel (r, c) shows source pixel (r, W − 1 − c). */
        rs_view a = identity_view();
        int16_t match[H * 5];
        assert_int_equal(rs_view_match(&a, &v, H, W, 1, match), 0);
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++)
                if (match[r * W + c] != r * W + (W - 1 - c))
                    fail_msg("W %d: pixel patch (%d, %d) matches %d, want %d", W, r, c, match[r * W + c],
                             r * W + (W - 1 - c));
        /* Flipped twice: the identity, bit for bit. */
        rs_view_spec twice;
        assert_int_equal(rs_view_spec_parse("flip:p=1+flip:p=1", &twice, &err), 0);
        rs_view vv;
        rs_view_draw(&twice, W, H, 7, 0, 1, &vv);
        assert_true(vv.identity && !vv.flipped);
    }
    /* After a crop the flip mirrors the crop's output: a 4 x 4 box (x0, y0) of an 8 x 8
     * image, flipped, maps x to x0 + (8 − x) · 4/8 (docs/views.md), exactly. */
    assert_int_equal(rs_view_spec_parse("crop:area=0.25-0.25,ratio=1-1+flip:p=1", &spec, &err), 0);
    rs_view v;
    rs_view_draw(&spec, 8, 8, 7, 0, 1, &v);
    assert_true(v.flipped && v.crop[2] == 4 && v.crop[3] == 4);
    const double want[6] = {-0.5, 0, v.crop[0] + 4, 0, 0.5, v.crop[1]};
    for (int q = 0; q < 6; q++)
        if (v.affine[q] != want[q])
            fail_msg("crop + flip: affine[%d] = %g, want %g", q, v.affine[q], want[q]);
}

static void test_quarter_crop_at_twice_the_scale(void **state)
{
    (void)state;
    /* View B shows the top-left quarter of a 32x32 source at 2x: its patch (r, c) covers
     * source patch (r/2, c/2). */
    rs_view a = identity_view(), b = crop_view(0, 0, 16, 16, 32, 32);
    int16_t match[64];
    assert_int_equal(rs_view_match(&a, &b, 32, 32, 4, match), 0);
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 8; c++)
            assert_int_equal(match[r * 8 + c], (r / 2) * 8 + c / 2);
    /* The other way round, only the source's top-left quarter lies inside view B. */
    assert_int_equal(rs_view_match(&b, &a, 32, 32, 4, match), 48);
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 8; c++) {
            int want = r < 4 && c < 4 ? (2 * r) * 8 + 2 * c + 0 : -1;
            /* Source centre ((c+.5)*4) is at B pixel 2*(c+.5)*4 = (2c+1)*4: patch 2c+1. */
            if (want >= 0)
                want = (2 * r + 1) * 8 + 2 * c + 1;
            assert_int_equal(match[r * 8 + c], want);
        }
}

static void test_boundary_goes_right_and_outside_is_unmatched(void **state)
{
    (void)state;
    /* B shifted by half a patch: each centre lands exactly on a patch boundary of A and
     * belongs to the patch on its right; the last column falls off the image. */
    rs_view a = identity_view(), b = identity_view();
    b.identity = false;
    b.affine[2] = 2; /* xs = x + 2 with patch 4 */
    int16_t match[49];
    assert_int_equal(rs_view_match(&a, &b, 28, 28, 4, match), 7);
    for (int r = 0; r < 7; r++)
        for (int c = 0; c < 7; c++)
            assert_int_equal(match[r * 7 + c], c < 6 ? r * 7 + c + 1 : -1);
}

static void test_noise_only_views_match_identically(void **state)
{
    (void)state;
    rs_view_spec clean, noisy;
    rs_error err;
    assert_int_equal(rs_view_spec_parse("clean", &clean, &err), 0);
    assert_int_equal(rs_view_spec_parse("noise:severity=5", &noisy, &err), 0);
    rs_view a, b;
    rs_view_draw(&clean, 28, 28, 7, 3, 0, &a);
    rs_view_draw(&noisy, 28, 28, 7, 3, 1, &b);
    assert_true(a.identity && b.identity);
    assert_float_equal(b.noise_sigma, 0.38, 1e-12);
    int16_t match[49];
    assert_int_equal(rs_view_match(&a, &b, 28, 28, 4, match), 0);
    for (int j = 0; j < 49; j++)
        assert_int_equal(match[j], j);
}

static void test_noise_statistics(void **state)
{
    (void)state;
    /* On a mid-grey image clipping never bites at sigma 0.1 (5 sigma from either end), so
     * the added noise is visible exactly: mean 0 and the spec's sigma. */
    enum { C = 3, H = 96, W = 96 };
    static float src[C * H * W], out[C * H * W];
    for (int i = 0; i < C * H * W; i++)
        src[i] = 0.5f;
    rs_view_spec spec;
    rs_error err;
    assert_int_equal(rs_view_spec_parse("noise:sigma=0.1", &spec, &err), 0);
    rs_view v;
    rs_view_draw(&spec, W, H, 42, 5, 1, &v);
    rs_view_render(&v, src, C, H, W, out);
    double sum = 0, sq = 0;
    int n = C * H * W;
    for (int i = 0; i < n; i++) {
        double d = out[i] - 0.5;
        sum += d;
        sq += d * d;
    }
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    print_message("  noise: mean %.5f, sd %.5f over %d pixels\n", mean, sd, n);
    assert_true(fabs(mean) < 3 * 0.1 / sqrt(n));      /* three standard errors */
    assert_true(fabs(sd - 0.1) < 0.1 * 0.02);          /* within 2 % */
    /* The same draw renders the same bits; another image gets other noise. */
    static float again[C * H * W];
    rs_view_render(&v, src, C, H, W, again);
    assert_memory_equal(out, again, sizeof out);
    rs_view other;
    rs_view_draw(&spec, W, H, 42, 6, 1, &other);
    rs_view_render(&other, src, C, H, W, again);
    assert_memory_not_equal(out, again, sizeof out);
}

static void test_draws_are_reproducible_and_in_range(void **state)
{
    (void)state;
    rs_view_spec spec;
    rs_error err;
    assert_int_equal(rs_view_spec_parse(RS_PAIR_AUGMENT, &spec, &err), 0);
    int flips = 0;
    for (int image = 0; image < 2000; image++) {
        rs_view v, w;
        rs_view_draw(&spec, 28, 28, 99, image, 1, &v);
        rs_view_draw(&spec, 28, 28, 99, image, 1, &w);
        assert_memory_equal(v.affine, w.affine, sizeof v.affine);
        double x0 = v.crop[0], y0 = v.crop[1], cw = v.crop[2], ch = v.crop[3];
        assert_true(x0 >= 0 && y0 >= 0 && x0 + cw <= 28 && y0 + ch <= 28 && cw >= 1 && ch >= 1);
        /* Rounding w and h to whole pixels moves the area a little past the range. */
        double area = cw * ch / (28.0 * 28.0);
        assert_true(area > 0.05 * 0.7 && area <= 1.0);
        flips += v.flipped;
    }
    print_message("  %d flips in 2000 draws\n", flips);
    assert_true(flips > 900 && flips < 1100); /* p = 0.5: 1000 +- 4.5 sigma */
}

static void test_render_by_hand(void **state)
{
    (void)state;
    /* 4x4 grey ramp src[y][x] = x + 4y. */
    float src[16], out[16];
    for (int i = 0; i < 16; i++)
        src[i] = (float)i / 16;
    rs_view v = identity_view();
    rs_view_render(&v, src, 1, 4, 4, out);
    assert_memory_equal(src, out, sizeof src);
    /* Mirror: column x shows column 3 - x, exactly. */
    v.identity = false;
    double flip[6] = {-1, 0, 4, 0, 1, 0};
    memcpy(v.affine, flip, sizeof flip);
    rs_view_render(&v, src, 1, 4, 4, out);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            assert_float_equal(out[y * 4 + x], src[y * 4 + 3 - x], 1e-7);
    /* Top-left 2x2 at 2x: view pixel (0,0) centre 0.5 -> source 0.25, index -0.25: a
     * quarter of the missing column -1 (zero) and three quarters of pixel 0 on each axis. */
    v = crop_view(0, 0, 2, 2, 4, 4);
    rs_view_render(&v, src, 1, 4, 4, out);
    assert_float_equal(out[0], 0.75 * 0.75 * src[0], 1e-7);
    /* View pixel (1,1): source (0.75, 0.75), index (0.25, 0.25): bilinear of pixels 0,1,4,5. */
    double want = 0.75 * 0.75 * src[0] + 0.75 * 0.25 * src[1] + 0.25 * 0.75 * src[4] + 0.25 * 0.25 * src[5];
    assert_float_equal(out[5], want, 1e-7);
}

static void test_protocols(void **state)
{
    (void)state;
    char **specs;
    int n;
    rs_error err;
    assert_int_equal(rs_protocol_views("noise", NULL, &specs, &n, &err), 0);
    assert_int_equal(n, 6);
    assert_string_equal(specs[0], "clean");
    assert_string_equal(specs[5], "noise:severity=5");
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    assert_int_equal(rs_protocol_views("pair", NULL, &specs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(specs[1], RS_PAIR_AUGMENT);
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    assert_int_equal(rs_protocol_views("custom", &(rs_protocol_args){.custom = "clean;flip:p=1;rotate:deg=10"}, &specs, &n, &err), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    /* The form `runs` prints: blanks around ';' are not part of the specs. */
    assert_int_equal(rs_protocol_views("custom", &(rs_protocol_args){.custom = "clean ; noise:severity=1\t"}, &specs,
                                       &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(specs[0], "clean");
    assert_string_equal(specs[1], "noise:severity=1");
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    assert_int_equal(rs_protocol_views("custom", &(rs_protocol_args){.custom = "clean"}, &specs, &n, &err), RS_EINVAL);
    /* Views written with commas: one view, and the message names ';'. */
    assert_int_equal(rs_protocol_views("custom", &(rs_protocol_args){.custom = "clean,flip:p=1"}, &specs, &n, &err),
                     RS_EINVAL);
    assert_non_null(strstr(err.msg, "views are separated by ';'"));
    assert_int_equal(rs_protocol_views("custom", &(rs_protocol_args){.custom = "clean; "}, &specs, &n, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "empty view"));
    assert_int_equal(rs_protocol_views("custom", &(rs_protocol_args){.custom = "clean;noise:sigma=x"}, &specs, &n, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "sigma 'x' is not a number"));
    assert_int_equal(rs_protocol_views("custom", &(rs_protocol_args){.custom = "clean;;flip:p=1"}, &specs, &n, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "empty view"));
    assert_int_equal(rs_protocol_views("triple", NULL, &specs, &n, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "unknown protocol 'triple'"));
    assert_int_equal(rs_protocol_views("custom", &(rs_protocol_args){.custom = "clean;base:view=1"}, &specs, &n,
                                       &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "base view 1 is not an earlier view (this is view 1)"));

    /* intervene: clean, the perturbation, forced in all MoE blocks, then in each. */
    const int blocks[] = {1, 3};
    rs_protocol_args iv = {.moe_blocks = blocks, .num_moe = 2};
    assert_int_equal(rs_protocol_views("intervene", &iv, &specs, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_string_equal(specs[1], RS_INTERVENE_PERTURB);
    assert_string_equal(specs[2], "base:view=1+route:from=0");
    assert_string_equal(specs[3], "base:view=1+route:from=0,layers=1");
    assert_string_equal(specs[4], "base:view=1+route:from=0,layers=3");
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    iv = (rs_protocol_args){.augment = "crop:area=0.5-1", .moe_blocks = blocks, .num_moe = 1};
    assert_int_equal(rs_protocol_views("intervene", &iv, &specs, &n, &err), 0);
    assert_int_equal(n, 3); /* one MoE block: no per-block views */
    assert_string_equal(specs[1], "crop:area=0.5-1");
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    iv.augment = "base:view=0+noise:severity=2";
    assert_int_equal(rs_protocol_views("intervene", &iv, &specs, &n, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "the intervene protocol writes base: and route: itself"));
    iv.augment = "noise:sigma=x";
    assert_int_equal(rs_protocol_views("intervene", &iv, &specs, &n, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "sigma 'x' is not a number"));

    /* adversarial: clean, then one attacked view per eps, on top of view 0. */
    assert_int_equal(rs_protocol_views("adversarial", NULL, &specs, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_string_equal(specs[0], "clean");
    assert_string_equal(specs[1], "base:view=0+pgd:eps=1/255,steps=10,loss=router");
    assert_string_equal(specs[4], "base:view=0+pgd:eps=8/255,steps=10,loss=router");
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    rs_protocol_args adv = {.attack = "pgd:mode=vmoe", .eps = "0,0.5"};
    assert_int_equal(rs_protocol_views("adversarial", &adv, &specs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(specs[1], "base:view=0+pgd:eps=0,mode=vmoe");
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    adv = (rs_protocol_args){.attack = "pgd", .eps = "2/255"};
    assert_int_equal(rs_protocol_views("adversarial", &adv, &specs, &n, &err), 0);
    assert_string_equal(specs[1], "base:view=0+pgd:eps=2/255");
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    static const struct { const char *attack, *eps, *fragment; } bad[] = {
        {"pgd:eps=1/255", NULL, "--attack 'pgd:eps=1/255': the radii come from --eps"},
        {"noise:sigma=1", NULL, "want one pgd operation"},
        {"pgd:steps=2+flip", NULL, "want one pgd operation"},
        {"pgdx", NULL, "want one pgd operation"},
        {NULL, "1/255,,2/255", "--eps '1/255,,2/255': an empty value"},
        {NULL, "-1", "eps -1 outside"},
        /* The protocol's radii grow strictly: the statistics read them as a grid. */
        {NULL, "8/255,1/255", "--eps '8/255,1/255': the radii must increase strictly (1/255 after 8/255)"},
        {NULL, "1/255,2/255,2/255", "--eps '1/255,2/255,2/255': the radii must increase strictly (2/255 after 2/255)"},
        {NULL, "0.5,1/2", "--eps '0.5,1/2': the radii must increase strictly (1/2 after 0.5)"},
        {NULL, "0x10", "eps '0x10' is not a number"},
        {NULL, " 1/255", "eps ' 1/255' is not a number"},
        {"pgd:loss=foo", NULL, "foo"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        adv = (rs_protocol_args){.attack = bad[i].attack, .eps = bad[i].eps};
        specs = (char **)0x1;
        assert_int_equal(rs_protocol_views("adversarial", &adv, &specs, &n, &err), RS_EINVAL);
        assert_null(specs);
        print_message("  %s\n", err.msg);
        if (!strstr(err.msg, bad[i].fragment))
            fail_msg("'%s' lacks '%s'", err.msg, bad[i].fragment);
    }
}

/* The PRC training's view: crop box (x0, y0, w, h) resized to W x H, then maybe flipped. */
static rs_view box_view(json_t *j, int W, int H)
{
    double x0 = json_number_value(json_object_get(j, "x0")), y0 = json_number_value(json_object_get(j, "y0"));
    double w = json_number_value(json_object_get(j, "w")), h = json_number_value(json_object_get(j, "h"));
    rs_view v = crop_view(x0, y0, w, h, W, H);
    if (json_is_true(json_object_get(j, "flip"))) { /* xs = x0 + (W - x) w / W */
        v.affine[0] = -w / W;
        v.affine[2] = x0 + w;
    }
    v.identity = v.affine[0] == 1 && v.affine[2] == 0 && v.affine[4] == 1 && v.affine[5] == 0;
    return v;
}

static void test_shared_vectors_from_pytorch(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/correspondence.json", tu_dir("RS_GOLDEN_DIR", "tests/golden"));
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        fail_msg("%s: %s", path, jerr.text);
    json_t *cases = json_object_get(root, "cases");
    size_t i;
    json_t *c;
    int checked = 0;
    json_array_foreach(cases, i, c) {
        int H = (int)json_integer_value(json_array_get(json_object_get(c, "size"), 0));
        int W = (int)json_integer_value(json_array_get(json_object_get(c, "size"), 1));
        int P = (int)json_integer_value(json_object_get(c, "patch"));
        rs_view a = box_view(json_object_get(c, "a"), W, H), b = box_view(json_object_get(c, "b"), W, H);
        json_t *want = json_object_get(c, "match");
        int16_t match[4096];
        assert_true(json_array_size(want) == (size_t)(H / P) * (W / P));
        rs_view_match(&a, &b, H, W, P, match);
        for (size_t j = 0; j < json_array_size(want); j++) {
            if (match[j] != json_integer_value(json_array_get(want, j)))
                fail_msg("case %zu patch %zu: C %d, PyTorch %lld", i, j, match[j],
                         (long long)json_integer_value(json_array_get(want, j)));
        }
        checked++;
    }
    print_message("  %d cases agree with pytorch/train.py\n", checked);
    assert_true(checked >= 200);
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_long_spec_keeps_its_reason),
        cmocka_unit_test(test_parse_pgd),
        cmocka_unit_test(test_parse_base),
        cmocka_unit_test(test_parse_route),
        cmocka_unit_test(test_flip_maps_columns),
        cmocka_unit_test(test_flip_pixel_exact),
        cmocka_unit_test(test_quarter_crop_at_twice_the_scale),
        cmocka_unit_test(test_boundary_goes_right_and_outside_is_unmatched),
        cmocka_unit_test(test_noise_only_views_match_identically),
        cmocka_unit_test(test_noise_statistics),
        cmocka_unit_test(test_draws_are_reproducible_and_in_range),
        cmocka_unit_test(test_render_by_hand),
        cmocka_unit_test(test_protocols),
        cmocka_unit_test(test_shared_vectors_from_pytorch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
