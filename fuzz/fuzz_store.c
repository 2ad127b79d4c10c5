/* fuzz_store.c — opening a foreign file as a routing store, read-only and for writing. */
#include <stdint.h>
#include <stdio.h>

#include "fuzz_util.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[256], side[300];
    /* Each input is a fresh file: no WAL or journal from the previous one. */
    static const char *const suffixes[] = {"-wal", "-shm", "-journal"};
    fz_write("store.db", data, size, path, sizeof path);
    for (int i = 0; i < 3; i++) {
        snprintf(side, sizeof side, "%s%s", path, suffixes[i]);
        remove(side);
    }
    for (int read_only = 1; read_only >= 0; read_only--) {
        rs_store *s = NULL;
        rs_error err;
        if (rs_store_open(path, read_only, &s, &err) == 0)
            rs_store_close(s);
    }
    return 0;
}
