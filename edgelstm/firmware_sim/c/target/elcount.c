/* QEMU TCG plugin: exact instruction counts between the firmware's markers.
 *
 * Every guest instruction gets an inline 64-bit add into one of a few counters (by instruction
 * class: load, store, load/store multiple, multiply, divide, branch, other), chosen from QEMU's disassembly at
 * translation time (multi = load/store multiple, push, pop). The first instruction of el_mark_begin / el_mark_end (addresses passed as
 * begin=0x.. and end=0x..) also gets a callback that snapshots the counters, so a window counts
 * exactly the instructions executed from the begin marker's first instruction up to, but not
 * including, the end marker's. At exit one line per window goes to the file out=<path>:
 * "<total> <load> <store> <multi> <mul> <div> <branch> <other>". With profile=<path>, lo= and hi=, it
 * also counts executions per instruction address in [lo, hi) over the whole run (whichever
 * windows) and writes "<address> <count>" lines to that path.
 *
 * The declarations below are the handful of QEMU plugin API (version 1, QEMU 4.2 to 8.x) entry
 * points used, written from QEMU's plugin documentation; no QEMU header is needed to build it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

enum { C_LOAD, C_STORE, C_MULTI, C_MUL, C_DIV, C_BRANCH, C_OTHER, N_CLASSES };

static uint64_t counters[N_CLASSES];
static uint64_t begin_addr = UINT64_MAX, end_addr = UINT64_MAX;
static uint64_t snapshot[N_CLASSES];
static int armed;
static char out_path[1024];
/* optional per-address profile of [prof_lo, prof_hi): one counter per halfword */
static uint64_t prof_lo, prof_hi;
static uint64_t *prof;
static char prof_path[1024];
static uint64_t *windows;  /* N_CLASSES + 1 values per window */
static size_t n_windows, cap_windows;

static uint64_t total(const uint64_t *c) {
    uint64_t s = 0;
    for (int i = 0; i < N_CLASSES; i++) s += c[i];
    return s;
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Thumb mnemonics by class; conditional and width suffixes (eq, .w, s) do not change it. */
static int classify(const char *disas) {
    char m[32];
    size_t i = 0;
    while (*disas == ' ' || *disas == '\t') disas++;
    while (disas[i] && disas[i] != ' ' && disas[i] != '\t' && i < sizeof m - 1) { m[i] = disas[i]; i++; }
    m[i] = 0;
    const char *args = disas + i;
    /* a pop/ldm that loads pc is a return: counted with the multiple transfers, whose cost it has */
    if (starts_with(m, "ldr") && strstr(args, "pc,") == args + strspn(args, " \t")) return C_BRANCH;
    if (starts_with(m, "ldm") || starts_with(m, "pop") || starts_with(m, "stm") || starts_with(m, "push")) return C_MULTI;
    if (starts_with(m, "ldr") || starts_with(m, "lda")) return C_LOAD;
    if (starts_with(m, "str") || starts_with(m, "stl")) return C_STORE;
    if (starts_with(m, "sdiv") || starts_with(m, "udiv")) return C_DIV;
    if (starts_with(m, "mul") || starts_with(m, "mla") || starts_with(m, "mls") || starts_with(m, "smul") ||
        starts_with(m, "umul") || starts_with(m, "smla") || starts_with(m, "umla") || starts_with(m, "smmul") ||
        starts_with(m, "smmla") || starts_with(m, "smmls") || starts_with(m, "smusd") || starts_with(m, "smuad") ||
        starts_with(m, "smlsd") || starts_with(m, "umaal"))
        return C_MUL;
    if (m[0] == 'b') {
        static const char *const rest[] = {"", "l", "x", "lx", "eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl",
                                           "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al"};
        char r[8];
        size_t k = 0;
        while (m[1 + k] && m[1 + k] != '.' && k < sizeof r - 1) { r[k] = m[1 + k]; k++; }
        r[k] = 0;
        for (size_t j = 0; j < sizeof rest / sizeof rest[0]; j++)
            if (strcmp(r, rest[j]) == 0) return C_BRANCH;
    }
    if (starts_with(m, "cbz") || starts_with(m, "cbnz") || starts_with(m, "tbb") || starts_with(m, "tbh")) return C_BRANCH;
    if ((starts_with(m, "mov") || starts_with(m, "add")) && strstr(args, "pc,") == args + strspn(args, " \t")) return C_BRANCH;
    return C_OTHER;
}

static void at_begin(unsigned int vcpu, void *u) {
    (void)vcpu; (void)u;
    memcpy(snapshot, counters, sizeof counters);
    armed = 1;
}

static void at_end(unsigned int vcpu, void *u) {
    (void)vcpu; (void)u;
    if (!armed) return;
    armed = 0;
    if (n_windows == cap_windows) {
        cap_windows = cap_windows ? 2 * cap_windows : 1024;
        windows = realloc(windows, cap_windows * (N_CLASSES + 1) * sizeof *windows);
        if (!windows) abort();
    }
    uint64_t *w = windows + n_windows * (N_CLASSES + 1);
    uint64_t d[N_CLASSES];
    for (int i = 0; i < N_CLASSES; i++) d[i] = counters[i] - snapshot[i];
    w[0] = total(d);
    memcpy(w + 1, d, sizeof d);
    n_windows++;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        /* snapshot callbacks first, so that the marker instruction's own count falls after them */
        if (pc == begin_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, at_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (pc == end_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, at_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        char *d = qemu_plugin_insn_disas(insn);
        int c = d ? classify(d) : C_OTHER;
        free(d);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counters[c], 1);
        if (prof && pc >= prof_lo && pc < prof_hi)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &prof[(pc - prof_lo) / 2], 1);
    }
}

static void at_exit_cb(qemu_plugin_id_t id, void *u) {
    (void)id; (void)u;
    FILE *f = fopen(out_path, "w");
    if (!f) return;
    for (size_t k = 0; k < n_windows; k++) {
        const uint64_t *w = windows + k * (N_CLASSES + 1);
        for (int i = 0; i <= N_CLASSES; i++) fprintf(f, i ? " %llu" : "%llu", (unsigned long long)w[i]);
        fputc('\n', f);
    }
    fclose(f);
    if (prof && (f = fopen(prof_path, "w")) != NULL) {
        for (uint64_t a = prof_lo; a < prof_hi; a += 2)
            if (prof[(a - prof_lo) / 2]) fprintf(f, "%llx %llu\n", (unsigned long long)a, (unsigned long long)prof[(a - prof_lo) / 2]);
        fclose(f);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (starts_with(argv[i], "begin=")) begin_addr = strtoull(argv[i] + 6, NULL, 0) & ~1ull;
        else if (starts_with(argv[i], "end=")) end_addr = strtoull(argv[i] + 4, NULL, 0) & ~1ull;
        else if (starts_with(argv[i], "out=")) snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        else if (starts_with(argv[i], "profile=")) snprintf(prof_path, sizeof prof_path, "%s", argv[i] + 8);
        else if (starts_with(argv[i], "lo=")) prof_lo = strtoull(argv[i] + 3, NULL, 0);
        else if (starts_with(argv[i], "hi=")) prof_hi = strtoull(argv[i] + 3, NULL, 0);
        else return -1;
    }
    if (!out_path[0]) return -1;
    if (prof_path[0] && prof_hi > prof_lo && prof_hi - prof_lo <= (64u << 20)) {
        prof = calloc((prof_hi - prof_lo) / 2 + 1, sizeof *prof);
        if (!prof) return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit_cb, NULL);
    return 0;
}
