/* A probe, not part of fidele: how fast compiled code groups the rows of a time-ordered
 * export by string customer id, computing what fidele's summary needs per customer (first and
 * last purchase day, transactions, distinct purchase days, total, first day's amount, sum of
 * squared gaps between purchase days). Driven by bench/kernel_probe.py, which writes the
 * columns as raw arrays; see bench/README.md ("a compiled kernel, measured").
 *
 * One pass over the rows: each id is hashed, found in an open-addressing table and its
 * customer's figures updated. Ids of up to 15 bytes are kept in the customer's record (one
 * cache line), so finding a customer costs no visit to the row that first named it; the
 * table slot and the customer of a row a few rows ahead are prefetched. A day that goes back
 * within a customer (rows not in time order) is counted: the real kernel would hand such a
 * file to the sort-based path. With two threads, the rows are first split by the top bit of
 * their hash and each thread groups its half.
 *
 *   cc -O2 -march=native -pthread -o kernel_probe kernel_probe.c
 *   ./kernel_probe DIR [THREADS]   (DIR holds ids.bin, off.bin, day.bin, amount.bin)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

typedef struct {
    int32_t first, last, n, days;
    int64_t total, first_amount, gap_sq, row;
    uint8_t key[15];
    uint8_t len; /* 255: longer than key, compared with the row that first named it */
} Customer;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *slurp(const char *dir, const char *name, size_t *size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        exit(2);
    }
    fseek(fp, 0, SEEK_END);
    *size = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *buf = malloc(*size);
    if (fread(buf, 1, *size, fp) != *size) {
        perror(path);
        exit(2);
    }
    fclose(fp);
    return buf;
}

static inline uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n, v;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    v = 0;
    memcpy(&v, p, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

/* the table twice as large, every customer placed again by its id's hash */
static void grow(uint64_t **table, size_t *capacity, const Customer *cs, uint32_t m,
                 const uint8_t *ids, const int64_t *off) {
    free(*table);
    *capacity *= 2;
    size_t mask = *capacity - 1;
    *table = calloc(*capacity, 8);
    for (uint32_t k = 0; k < m; k++) {
        size_t r = (size_t)cs[k].row;
        uint64_t h = hash_bytes(ids + off[r], (size_t)(off[r + 1] - off[r]));
        size_t s = (h >> 20) & mask;
        while ((*table)[s]) s = (s + 1) & mask;
        (*table)[s] = ((uint64_t)(uint32_t)h << 32) | (k + 1);
    }
}

typedef struct {
    const uint8_t *ids;
    const int64_t *off;
    const int32_t *day;
    const int64_t *amount;
    const uint64_t *hashes;
} Columns;

/* one thread's rows (NULL: all of them, in order) and what it found */
typedef struct {
    const Columns *columns;
    const uint32_t *rows;
    size_t count;
    Customer *cs;
    uint32_t m;
    size_t back;
} Part;

static void *group(void *arg) {
    Part *P = arg;
    const uint8_t *ids = P->columns->ids;
    const int64_t *off = P->columns->off, *amount = P->columns->amount;
    const int32_t *day = P->columns->day;
    const uint64_t *hashes = P->columns->hashes;
    size_t capacity = (size_t)1 << 16, mask = capacity - 1;
    uint64_t *table = calloc(capacity, 8); /* hash tag << 32 | customer + 1 */
    Customer *cs = malloc(sizeof(Customer) * (P->count + 1));
    uint32_t m = 0;
    size_t back = 0;
    for (size_t j = 0; j < P->count; j++) {
        size_t i = P->rows ? P->rows[j] : j;
        if (j + 16 < P->count) {
            size_t f = P->rows ? P->rows[j + 16] : j + 16;
            __builtin_prefetch(&table[(hashes[f] >> 20) & mask]);
            __builtin_prefetch(ids + off[f]);
        }
        if (j + 6 < P->count) {
            uint64_t ahead = table[(hashes[P->rows ? P->rows[j + 6] : j + 6] >> 20) & mask];
            if (ahead) __builtin_prefetch(&cs[(uint32_t)ahead - 1]);
        }
        uint64_t h = hashes[i];
        uint32_t tag = (uint32_t)h;
        const uint8_t *p = ids + off[i];
        size_t len = (size_t)(off[i + 1] - off[i]);
        for (size_t s = (h >> 20) & mask;; s = (s + 1) & mask) {
            uint64_t e = table[s];
            if (!e) {
                if (4 * (size_t)(m + 1) > capacity) { /* a quarter full: grow, start over */
                    grow(&table, &capacity, cs, m, ids, off);
                    mask = capacity - 1;
                    s = ((h >> 20) & mask) - 1;
                    continue;
                }
                table[s] = ((uint64_t)tag << 32) | (m + 1);
                Customer *c = &cs[m++];
                c->first = c->last = day[i];
                c->n = c->days = 1;
                c->total = c->first_amount = amount[i];
                c->gap_sq = 0;
                c->row = (int64_t)i;
                c->len = len <= 15 ? (uint8_t)len : 255;
                if (len <= 15) memcpy(c->key, p, len);
                break;
            }
            if ((uint32_t)(e >> 32) != tag) continue;
            Customer *c = &cs[(uint32_t)e - 1];
            int same;
            if (c->len != 255) {
                same = c->len == len && !memcmp(c->key, p, len);
            } else {
                size_t r = (size_t)c->row;
                same = (size_t)(off[r + 1] - off[r]) == len && !memcmp(ids + off[r], p, len);
            }
            if (!same) continue;
            int32_t d = day[i];
            if (d != c->last) {
                int64_t gap = d - c->last;
                back += d < c->last;
                c->gap_sq += gap * gap;
                c->days++;
                c->last = d;
            }
            c->n++;
            c->total += amount[i];
            if (d == c->first) c->first_amount += amount[i];
            break;
        }
    }
    free(table);
    P->cs = cs;
    P->m = m;
    P->back = back;
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    size_t size;
    Columns c;
    c.ids = slurp(dir, "ids.bin", &size);
    c.off = slurp(dir, "off.bin", &size);
    size_t n = size / 8 - 1;
    c.day = slurp(dir, "day.bin", &size);
    c.amount = slurp(dir, "amount.bin", &size);

    double t0 = now();
    uint64_t *hashes = malloc(8 * n);
    for (size_t i = 0; i < n; i++)
        hashes[i] = hash_bytes(c.ids + c.off[i], (size_t)(c.off[i + 1] - c.off[i]));
    c.hashes = hashes;

    double t1 = now();
    Part parts[2] = {{&c, NULL, n, NULL, 0, 0}, {&c, NULL, 0, NULL, 0, 0}};
    if (threads > 1) { /* the rows by the top bit of their hash, in their order */
        uint32_t *rows = malloc(4 * n);
        size_t low = 0, high = 0;
        for (size_t i = 0; i < n; i++) low += !(hashes[i] >> 63);
        for (size_t i = 0; i < n; i++) {
            if (hashes[i] >> 63) rows[low + high++] = (uint32_t)i;
            else rows[i - high] = (uint32_t)i;
        }
        parts[0] = (Part){&c, rows, low, NULL, 0, 0};
        parts[1] = (Part){&c, rows + low, n - low, NULL, 0, 0};
        pthread_t other;
        pthread_create(&other, NULL, group, &parts[1]);
        group(&parts[0]);
        pthread_join(other, NULL);
    } else {
        group(&parts[0]);
    }
    double t2 = now();

    /* every figure summed over the customers: the driver checks them against fidele's */
    int64_t sums[7] = {0};
    for (int q = 0; q < 2; q++) {
        for (uint32_t k = 0; k < parts[q].m; k++) {
            const Customer *x = &parts[q].cs[k];
            sums[0] += x->first, sums[1] += x->last, sums[2] += x->n, sums[3] += x->days;
            sums[4] += x->total, sums[5] += x->first_amount, sums[6] += x->gap_sq;
        }
    }
    printf("{\"rows\": %zu, \"threads\": %d, \"customers\": %u, \"days_back\": %zu, "
           "\"sums\": [%lld, %lld, %lld, %lld, %lld, %lld, %lld], "
           "\"hash_s\": %.4f, \"group_s\": %.4f}\n",
           n, threads > 1 ? 2 : 1, parts[0].m + parts[1].m, parts[0].back + parts[1].back,
           (long long)sums[0], (long long)sums[1], (long long)sums[2], (long long)sums[3],
           (long long)sums[4], (long long)sums[5], (long long)sums[6], t1 - t0, t2 - t1);
    return 0;
}
