/* libFuzzer harness: the config parser. The input is an INI file for config_load, and
 * its first line is also one `--set` assignment for config_set. */
#include "fuzz_common.h"

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[256];
    if (!path[0]) {
        fuzz_path(path, sizeof path, "config", ".ini");
        log_set_quiet(true);
    }
    if (fuzz_write(path, data, size) != 0) return 0;
    static Config cfg; /* large (paths, class weights): not on the stack */
    char err[1024];
    (void)config_load(&cfg, path, NULL, 0, err, sizeof err);

    char line[4096];
    size_t n = 0;
    while (n < size && n + 1 < sizeof line && data[n] != '\n') {
        line[n] = (char)data[n];
        n++;
    }
    line[n] = '\0';
    config_defaults(&cfg);
    if (config_set(&cfg, line, err, sizeof err) == XT_OK) (void)config_validate(&cfg, err, sizeof err);
    const char *overrides[1] = {line};
    (void)config_load(&cfg, NULL, overrides, 1, err, sizeof err);
    return 0;
}
