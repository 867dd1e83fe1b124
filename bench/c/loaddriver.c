/*
 * loaddriver: drives a pmdaroot-protocol socket through PCP's own client
 * library (libpcp_pmda), so the latency it measures is the latency that
 * pmcd, pmdaproc and pmdalinux see.
 *
 *   loaddriver -s SOCKET -o pid|cgroup|hostname [-c CLIENTS] [-d MILLIS]
 *              [-n MAXREQUESTS] [-w WARMUP] NAME...
 *
 * CLIENTS connections (one thread each) send requests back to back, each
 * cycling through the NAMEs from its own starting point, until MILLIS have
 * passed or MAXREQUESTS have been sent in all (both bounds always apply).
 * Every thread first sends WARMUP unmeasured requests, then all start
 * together. Each request's latency is taken with CLOCK_MONOTONIC around the
 * library call.
 *
 * Output: one JSON object on stdout with the request and error counts, the
 * elapsed time, and latency percentiles in microseconds; "answer" is what
 * the first NAME resolved to ("err CODE TEXT" on failure).
 * Exit status: 0 when it ran (errors are counted, not fatal), 1 when a
 * connection failed, 2 for usage errors.
 */
#include <pcp/pmapi.h>
#include <pcp/pmda.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum op { OP_PID, OP_CGROUP, OP_HOSTNAME };

struct worker {
    pthread_t	thread;
    int		fd;
    int		first;		/* index of the first name this thread asks */
    long	quota;		/* most measured requests */
    long	count;		/* measured requests done */
    long	errors;
    int		last_error;
    uint64_t	*lat;		/* nanoseconds, quota entries */
};

static enum op		op;
static char		**names;
static int		*namelens;
static int		nnames;
static int		warmup;
static uint64_t		deadline;	/* CLOCK_MONOTONIC ns */
static pthread_barrier_t warmed_up, start_line;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* request sends one request; negative is a PCP error code. */
static int
request(int fd, int i, char *buf, int buflen)
{
    switch (op) {
    case OP_PID:
	return pmdaRootContainerProcessID(fd, names[i], namelens[i]);
    case OP_CGROUP:
	return pmdaRootContainerCGroupName(fd, names[i], namelens[i], buf, buflen);
    default:
	return pmdaRootContainerHostName(fd, names[i], namelens[i], buf, buflen);
    }
}

static void *
run(void *arg)
{
    struct worker *w = arg;
    char buf[MAXPATHLEN];
    int i = w->first, k, sts;
    uint64_t t0, t1;

    for (k = 0; k < warmup; k++) {
	request(w->fd, i, buf, sizeof(buf));
	i = (i + 1) % nnames;
    }
    /* The main thread sets the deadline between these two. */
    pthread_barrier_wait(&warmed_up);
    pthread_barrier_wait(&start_line);
    while (w->count < w->quota) {
	t0 = now_ns();
	if (t0 >= deadline)
	    break;
	sts = request(w->fd, i, buf, sizeof(buf));
	t1 = now_ns();
	w->lat[w->count++] = t1 - t0;
	if (sts < 0) {
	    w->errors++;
	    w->last_error = sts;
	}
	i = (i + 1) % nnames;
    }
    return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* percentile of sorted v[0..n-1], nearest rank, in microseconds. */
static double
pct(const uint64_t *v, long n, double p)
{
    long r;
    if (n == 0)
	return 0;
    r = (long)(p / 100.0 * (double)n + 0.999999);
    if (r < 1)
	r = 1;
    if (r > n)
	r = n;
    return (double)v[r - 1] / 1000.0;
}

/* json_string prints s as a JSON string literal. */
static void
json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
	unsigned char c = (unsigned char)*s;
	if (c == '"' || c == '\\')
	    printf("\\%c", c);
	else if (c < 0x20)
	    printf("\\u%04x", c);
	else
	    putchar(c);
    }
    putchar('"');
}

static void
usage(const char *prog)
{
    fprintf(stderr, "usage: %s -s SOCKET -o pid|cgroup|hostname [-c CLIENTS] [-d MILLIS] "
	    "[-n MAXREQUESTS] [-w WARMUP] NAME...\n", prog);
    exit(2);
}

int
main(int argc, char **argv)
{
    const char *sock = NULL, *opname = NULL;
    int clients = 1, c, i, sts;
    long millis = 1000, maxreq = 100000, total = 0, errors = 0, per, extra;
    int last_error = 0;
    struct worker *ws;
    uint64_t t0, t1, *all;
    char buf[MAXPATHLEN], answer[MAXPATHLEN + 64], msg[PM_MAXERRMSGLEN];
    double sum = 0;

    while ((c = getopt(argc, argv, "s:o:c:d:n:w:")) != -1) {
	switch (c) {
	case 's': sock = optarg; break;
	case 'o': opname = optarg; break;
	case 'c': clients = atoi(optarg); break;
	case 'd': millis = atol(optarg); break;
	case 'n': maxreq = atol(optarg); break;
	case 'w': warmup = atoi(optarg); break;
	default: usage(argv[0]);
	}
    }
    if (sock == NULL || opname == NULL || optind >= argc)
	usage(argv[0]);
    if (strcmp(opname, "pid") == 0)
	op = OP_PID;
    else if (strcmp(opname, "cgroup") == 0)
	op = OP_CGROUP;
    else if (strcmp(opname, "hostname") == 0)
	op = OP_HOSTNAME;
    else
	usage(argv[0]);
    if (clients < 1 || clients > 1024 || millis < 1 || millis > 600000 ||
	maxreq < clients || maxreq > 50000000 || warmup < 0) {
	fprintf(stderr, "%s: CLIENTS 1..1024, MILLIS 1..600000, MAXREQUESTS CLIENTS..50000000\n", argv[0]);
	return 2;
    }
    names = argv + optind;
    nnames = argc - optind;
    if ((namelens = calloc(nnames, sizeof(int))) == NULL)
	return 1;
    for (i = 0; i < nnames; i++)
	namelens[i] = (int)strlen(names[i]);

    /* Connect in order, before any thread runs: the set-up is not measured. */
    ws = calloc(clients, sizeof(*ws));
    per = maxreq / clients;
    extra = maxreq % clients;
    for (i = 0; i < clients; i++) {
	if ((ws[i].fd = pmdaRootConnect(sock)) < 0) {
	    fprintf(stderr, "loaddriver: connect %s: %s\n", sock, pmErrStr_r(ws[i].fd, msg, sizeof(msg)));
	    return 1;
	}
	ws[i].first = i % nnames;
	ws[i].quota = per + (i < extra);
	if ((ws[i].lat = malloc(ws[i].quota * sizeof(uint64_t))) == NULL) {
	    fprintf(stderr, "loaddriver: out of memory\n");
	    return 1;
	}
    }

    /* The answer for the first name, as the library hands it over. */
    sts = request(ws[0].fd, 0, buf, sizeof(buf));
    if (sts < 0)
	snprintf(answer, sizeof(answer), "err %d %s", sts, pmErrStr_r(sts, msg, sizeof(msg)));
    else if (op == OP_PID)
	snprintf(answer, sizeof(answer), "%d", sts);
    else
	snprintf(answer, sizeof(answer), "%s", buf);

    pthread_barrier_init(&warmed_up, NULL, clients + 1);
    pthread_barrier_init(&start_line, NULL, clients + 1);
    for (i = 0; i < clients; i++)
	if (pthread_create(&ws[i].thread, NULL, run, &ws[i]) != 0) {
	    fprintf(stderr, "loaddriver: cannot start thread %d\n", i);
	    return 1;
	}
    pthread_barrier_wait(&warmed_up);
    t0 = now_ns();
    deadline = t0 + (uint64_t)millis * 1000000ull;
    pthread_barrier_wait(&start_line);
    for (i = 0; i < clients; i++)
	pthread_join(ws[i].thread, NULL);
    t1 = now_ns();

    for (i = 0; i < clients; i++) {
	total += ws[i].count;
	errors += ws[i].errors;
	if (ws[i].errors)
	    last_error = ws[i].last_error;
    }
    all = malloc((total ? total : 1) * sizeof(uint64_t));
    for (total = 0, i = 0; i < clients; i++) {
	memcpy(all + total, ws[i].lat, ws[i].count * sizeof(uint64_t));
	total += ws[i].count;
	pmdaRootShutdown(ws[i].fd);
    }
    qsort(all, total, sizeof(uint64_t), cmp_u64);
    for (i = 0; i < total; i++)
	sum += (double)all[i];

    printf("{\"op\":\"%s\",\"clients\":%d,\"requests\":%ld,\"errors\":%ld,\"last_error\":%d,"
	   "\"elapsed_s\":%.6f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,"
	   "\"mean_us\":%.2f,\"answer\":",
	   opname, clients, total, errors, last_error, (double)(t1 - t0) / 1e9,
	   pct(all, total, 50), pct(all, total, 90), pct(all, total, 99),
	   total ? (double)all[total - 1] / 1000.0 : 0.0,
	   total ? sum / (double)total / 1000.0 : 0.0);
    json_string(answer);
    printf("}\n");
    return 0;
}
