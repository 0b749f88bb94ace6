/*
 * bench_memlat.c - what one random access to memory costs on this machine:
 * the floor under the engine's per-record time (docs/PERFORMANCE.md).
 *
 * A record touches, at random, a few slots of tables much larger than the
 * caches (its dedupe slot, its fact and followups, a group of each pairing
 * chain). This measures, for arrays of a few sizes:
 *   - latency: one chain of dependent loads over a random cyclic
 *     permutation of the array's 64-byte lines (each load's address comes
 *     from the previous one, so nothing overlaps): ns per load;
 *   - overlap: CHAINS (8) such chains walked in step, their loads
 *     independent of each other, as the engine's prefetched loads are:
 *     ns per load, which shows how many misses the core keeps in flight;
 * each with the array in transparent huge pages (MADV_HUGEPAGE, as the
 * engine's state arrays are) and in 4 KiB pages (MADV_NOHUGEPAGE). In a
 * virtual machine a TLB miss walks the guest's and the host's page tables,
 * so the two page sizes differ more than on bare metal.
 *
 * usage: bench_memlat [--out JSON] [--loads N]
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define LINE 64
#define CHAINS 8

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

typedef struct result {
        size_t mib;
        int huge;
        double latency_ns, overlapped_ns;
} result_t;

/* An array of mib MiB whose lines form one random cycle: each line's first
 * word is the offset of the next. */
static unsigned char *make_cycle(size_t mib, int huge)
{
        size_t n = mib << 20, lines = n / LINE;
        unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
                fprintf(stderr, "bench_memlat: mmap %zu MiB: %s\n", mib,
                        strerror(errno));
                exit(1);
        }
        madvise(p, n, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        memset(p, 0, n);
        uint32_t *perm = malloc(lines * sizeof(*perm));
        if (!perm) {
                fprintf(stderr, "bench_memlat: out of memory\n");
                exit(1);
        }
        for (size_t i = 0; i < lines; i++)
                perm[i] = (uint32_t)i;
        uint64_t s = 0x9e3779b97f4a7c15ULL;
        for (size_t i = lines - 1; i > 0; i--) {
                size_t j = (size_t)(rng(&s) % (i + 1));
                uint32_t t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
        }
        for (size_t i = 0; i < lines; i++) {
                uint64_t next = (uint64_t)perm[(i + 1) % lines] * LINE;
                memcpy(p + (size_t)perm[i] * LINE, &next, sizeof(next));
        }
        free(perm);
        return p;
}

static result_t measure(size_t mib, int huge, long loads)
{
        result_t r = {mib, huge, 0, 0};
        unsigned char *p = make_cycle(mib, huge);
        size_t n = mib << 20;
        uint64_t off = 0;
        /* warm the TLB and caches as far as they go, then time */
        for (long i = 0; i < loads / 10; i++)
                memcpy(&off, p + off, sizeof(off));
        double t0 = now_s();
        for (long i = 0; i < loads; i++)
                memcpy(&off, p + off, sizeof(off));
        r.latency_ns = (now_s() - t0) * 1e9 / (double)loads;
        /* CHAINS walkers on the same cycle, 1,009 lines apart along it
         * (they move in step, so they never meet) */
        uint64_t w[CHAINS];
        w[0] = off;
        for (int c = 1; c < CHAINS; c++) {
                w[c] = w[c - 1];
                for (int k = 0; k < 1009; k++)
                        memcpy(&w[c], p + w[c], sizeof(w[c]));
        }
        t0 = now_s();
        for (long i = 0; i < loads / CHAINS; i++)
                for (int c = 0; c < CHAINS; c++)
                        memcpy(&w[c], p + w[c], sizeof(w[c]));
        r.overlapped_ns = (now_s() - t0) * 1e9 / (double)loads;
        uint64_t sink = 0;
        for (int c = 0; c < CHAINS; c++)
                sink ^= w[c];
        if (sink == 1) /* never: keeps the walks from being optimised out */
                fprintf(stderr, "\n");
        munmap(p, n);
        return r;
}

int main(int argc, char **argv)
{
        const char *out = NULL;
        long loads = 20000000;
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--out") && i + 1 < argc)
                        out = argv[++i];
                else if (!strcmp(argv[i], "--loads") && i + 1 < argc)
                        loads = atol(argv[++i]);
                else {
                        fprintf(stderr,
                                "usage: bench_memlat [--out JSON] [--loads "
                                "N]\n");
                        return 2;
                }
        }
        if (loads < 1000)
                loads = 1000;
        static const size_t sizes[] = {8, 64, 256, 1024};
        enum { NS = sizeof(sizes) / sizeof(sizes[0]) };
        result_t res[NS * 2];
        int nr = 0;
        printf("%8s %6s %14s %22s\n", "MiB", "pages", "ns/load",
               "ns/load, 8 in flight");
        for (int i = 0; i < NS; i++)
                for (int huge = 1; huge >= 0; huge--) {
                        result_t r = measure(sizes[i], huge, loads);
                        res[nr++] = r;
                        printf("%8zu %6s %14.1f %22.1f\n", r.mib,
                               huge ? "2 MiB" : "4 KiB", r.latency_ns,
                               r.overlapped_ns);
                        fflush(stdout);
                }
        if (out) {
                FILE *f = fopen(out, "w");
                if (!f) {
                        fprintf(stderr, "bench_memlat: %s: %s\n", out,
                                strerror(errno));
                        return 1;
                }
                fprintf(f,
                        "{\n  \"loads\": %ld, \"chains\": %d,\n"
                        "  \"results\": [\n",
                        loads, CHAINS);
                for (int i = 0; i < nr; i++)
                        fprintf(f,
                                "    {\"mib\": %zu, \"pages\": \"%s\", "
                                "\"latency_ns\": %.2f, "
                                "\"overlapped_ns\": %.2f}%s\n",
                                res[i].mib, res[i].huge ? "2MiB" : "4KiB",
                                res[i].latency_ns, res[i].overlapped_ns,
                                i + 1 < nr ? "," : "");
                fprintf(f, "  ]\n}\n");
                if (fclose(f) != 0) {
                        fprintf(stderr, "bench_memlat: %s: write failed\n",
                                out);
                        return 1;
                }
                printf("written: %s\n", out);
        }
        return 0;
}
