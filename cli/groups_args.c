/* groups_args.c — the --group option of compare and report (cli.h). */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool rs_cli_add_group(const char *cmd, const char *text, rs_cli_groups *g)
{
    const char *eq = strchr(text, '=');
    size_t len = eq ? (size_t)(eq - text) : 0;
    bool ok = len > 0 && len < sizeof g->names[0];
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)text[i]) || strchr("-_+", text[i]);
    if (!ok) {
        rs_cli_usage_error(cmd, "--group wants NAME=ID,ID,... with a name of 1 to %d letters, digits, '-', '_' or "
                           "'+', got '%s'", (int)sizeof g->names[0] - 1, text);
        return false;
    }
    if (g->n == RS_CLI_MAX_GROUPS) {
        rs_cli_usage_error(cmd, "at most %d groups", RS_CLI_MAX_GROUPS);
        return false;
    }
    char flag[sizeof "--group " + sizeof g->names[0]];
    snprintf(flag, sizeof flag, "--group %.*s", (int)len, text);
    if (!rs_cli_parse_runs(cmd, flag, eq + 1, &g->ids[g->n], &g->sizes[g->n]))
        return false;
    /* A group is one run per seed: a run given twice would count its seed twice. */
    const int64_t *ids = g->ids[g->n];
    for (int i = 1; i < g->sizes[g->n]; i++)
        for (int j = 0; j < i; j++)
            if (ids[i] == ids[j]) {
                rs_cli_usage_error(cmd, "%s names run %" PRId64 " twice", flag, ids[i]);
                free(g->ids[g->n]);
                return false;
            }
    memcpy(g->names[g->n], text, len);
    g->names[g->n][len] = '\0';
    g->n++;
    return true;
}

bool rs_cli_groups_check(const char *cmd, const rs_cli_groups *g, int min)
{
    if (g->n < min) {
        rs_cli_usage_error(cmd, "wants at least %d --group options, got %d", min, g->n);
        return false;
    }
    for (int i = 1; i < g->n; i++)
        if (g->sizes[i] > g->sizes[0]) {
            rs_cli_usage_error(cmd, "seeds pair by position and the first group holds every seed: group %s has %d "
                               "runs, more than group %s's %d", g->names[i], g->sizes[i], g->names[0], g->sizes[0]);
            return false;
        }
    return true;
}

void rs_cli_groups_free(rs_cli_groups *g)
{
    for (int i = 0; i < g->n; i++)
        free(g->ids[i]);
    g->n = 0;
}
