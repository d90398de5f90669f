/*
 * loadgen.c - hubbub's WebSocket load generator for benchmarks/run.py.
 *
 * One thread, epoll, non-blocking sockets. It must cost much less CPU per
 * message than the server it measures, so:
 *   - every connection sends the same pre-masked frame (built once; RFC 6455
 *     section 5.3 lets a client pick any key, and a fixed one costs nothing);
 *   - received frames are parsed in place and payloads are skipped, never
 *     copied (only control frames and small text frames are kept);
 *   - latencies go to a sample array, sorted once at the end.
 *
 * Modes (results as JSON lines on stdout, the last one with "mode"):
 *   echo      --conns N --size B --window W [--binary] --duration S --warmup S
 *             every connection keeps W messages in flight; reports msgs_per_s,
 *             mb_per_s and round-trip latency percentiles (lat_us).
 *   broadcast --conns N --size B --window 1 --duration S --warmup S
 *             connection 0 sends text "broadcast:<seq><padding>" and every
 *             connection must receive "<seq><padding>"; reports deliveries/s
 *             (msgs_per_s) and the time until all N have it (fanout_us).
 *   idle      --conns N --parallel P --hold S
 *             opens N connections (at most P handshakes at a time), prints
 *             {"event":"opened",...}, holds them until a line arrives on
 *             stdin or S seconds pass.
 * Events {"event":"measure_start"} / {"event":"measure_end"} frame the
 * measured window so the caller can read the server's CPU time meanwhile.
 *
 * Build: gcc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ECHO, BROADCAST, IDLE };
enum { CLOSED, CONNECTING, UPGRADING, OPEN };

typedef struct {
    int fd, state;
    char head[1024];         /* handshake response, then small payloads */
    size_t head_len;
    unsigned char hdr[14];   /* frame header being read */
    size_t hdr_len, hdr_need;
    uint64_t left;           /* payload bytes still to read in this frame */
    int opcode, keep;        /* keep: payload goes to head[] (control/small text) */
    uint64_t out_frames;     /* whole frames still to write */
    size_t out_off;          /* bytes of the current frame already written */
    unsigned char pong[131]; /* a pong waiting for a frame boundary */
    size_t pong_len;
    double *sent;            /* send times of the messages in flight (ring) */
    unsigned sent_head, sent_tail, sent_cap;
} conn_t;

static int mode = ECHO, nconns = 1, window = 1, binary = 0, parallel = 64;
static size_t size = 64;
static double duration = 5, warmup = 1, hold = 30;
static char host[256] = "127.0.0.1", path[512] = "/";
static int port = 80;
static conn_t *conns;
static int ep;
static unsigned char *frame;       /* the pre-masked frame everyone sends */
static size_t frame_len;
static int measuring = 0;
static uint64_t received = 0, failed = 0, opened = 0, closed_by_peer = 0;
static double *samples;
static size_t nsamples = 0, maxsamples = 4u << 20;
static char last_error[200] = "";
/* broadcast bookkeeping */
static uint64_t bseq = 0;
static double bsent[64];   /* by sequence number modulo 64 */
static unsigned bgot[64];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sample(double seconds)
{
    if (measuring && nsamples < maxsamples)
        samples[nsamples++] = seconds * 1e6;
}

static void fail_conn(conn_t *c, const char *why)
{
    if (c->state != OPEN)
        failed++;
    snprintf(last_error, sizeof last_error, "%s", why);
    if (c->fd >= 0) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(c->fd);
    }
    c->fd = -1;
    c->state = CLOSED;
}

/* Build a masked client frame (section 5.2, 5.3). */
static size_t build_frame(unsigned char *out, int opcode, const unsigned char *payload, size_t n)
{
    static const unsigned char key[4] = {0x5a, 0x13, 0xc7, 0x2e};
    size_t h = 0, i;
    out[h++] = 0x80 | opcode;
    if (n < 126) {
        out[h++] = 0x80 | n;
    } else if (n < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = n >> 8;
        out[h++] = n & 0xff;
    } else {
        out[h++] = 0x80 | 127;
        for (i = 0; i < 8; i++)
            out[h++] = (uint64_t)n >> (56 - 8 * i) & 0xff;
    }
    memcpy(out + h, key, 4);
    h += 4;
    for (i = 0; i < n; i++)
        out[h + i] = payload[i] ^ key[i & 3];
    return h + n;
}

static void want_write(conn_t *c, int on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what is queued: whole frames, with pongs slipped in between them. */
static void flush_out(conn_t *c)
{
    for (;;) {
        if (c->pong_len && c->out_off == 0) {
            ssize_t w = write(c->fd, c->pong, c->pong_len);
            if (w == (ssize_t)c->pong_len)
                c->pong_len = 0;
            else if (w >= 0 || errno == EAGAIN) /* rare: a pong split; retry later */
                break;
            else {
                fail_conn(c, "write failed");
                return;
            }
        }
        if (!c->out_frames)
            break;
        ssize_t w = write(c->fd, frame + c->out_off, frame_len - c->out_off);
        if (w < 0) {
            if (errno == EAGAIN)
                break;
            fail_conn(c, "write failed");
            return;
        }
        c->out_off += w;
        if (c->out_off == frame_len) {
            c->out_off = 0;
            c->out_frames--;
        }
    }
    want_write(c, c->out_frames > 0 || c->pong_len > 0);
}

static void send_message(conn_t *c)
{
    if (c->sent_cap) {
        c->sent[c->sent_head] = now();
        c->sent_head = (c->sent_head + 1) % c->sent_cap;
    }
    c->out_frames++;
}

/* Rebuild the broadcast frame for the current sequence number. */
static void build_broadcast_frame(uint64_t seq)
{
    unsigned char *payload = malloc(size + 10);
    memcpy(payload, "broadcast:", 10);
    snprintf((char *)payload + 10, 11, "%010llu", (unsigned long long)seq);
    memset(payload + 20, 'x', size - 10);
    frame_len = build_frame(frame, 1, payload, size + 10);
    free(payload);
}

static void on_message(conn_t *c, int opcode)
{
    if (mode == ECHO && (opcode == 1 || opcode == 2)) {
        if (c->sent_tail != c->sent_head) {
            sample(now() - c->sent[c->sent_tail]);
            c->sent_tail = (c->sent_tail + 1) % c->sent_cap;
        }
        if (measuring)
            received++;
        send_message(c);
    } else if (mode == BROADCAST && opcode == 1 && c->head_len >= 10) {
        char digits[11];
        memcpy(digits, c->head, 10);
        digits[10] = 0;
        uint64_t seq = strtoull(digits, NULL, 10);
        unsigned slot = seq % 64;
        if (measuring)
            received++;
        if (++bgot[slot] == (unsigned)opened) {
            sample(now() - bsent[slot]);
            if (conns[0].state == OPEN) {
                build_broadcast_frame(bseq);
                bsent[bseq % 64] = now();
                bgot[bseq % 64] = 0;
                bseq++;
                conns[0].out_frames++;
                flush_out(&conns[0]);
            }
        }
    }
}

static void on_frame_end(conn_t *c)
{
    int op = c->opcode;
    if (op == 9 && c->head_len <= 125) { /* ping: answer with a pong (5.5.2) */
        c->pong_len = build_frame(c->pong, 10, (unsigned char *)c->head, c->head_len);
    } else if (op == 8) {
        closed_by_peer++;
        fail_conn(c, "closed by the server");
        return;
    } else if (op == 1 || op == 2) {
        on_message(c, op);
    }
}

/* Parse frames in place; payloads are skipped unless kept. */
static void on_data(conn_t *c, const unsigned char *p, size_t n)
{
    while (n && c->state == OPEN) {
        if (c->left == 0 && c->hdr_need == 0) {
            c->hdr_len = 0;
            c->hdr_need = 2;
        }
        if (c->hdr_need) {
            while (n && c->hdr_len < c->hdr_need) {
                c->hdr[c->hdr_len++] = *p++;
                n--;
                if (c->hdr_len == 2) {
                    unsigned l = c->hdr[1] & 0x7f;
                    c->hdr_need = 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + (c->hdr[1] & 0x80 ? 4 : 0);
                }
            }
            if (c->hdr_len < c->hdr_need)
                return;
            uint64_t l = c->hdr[1] & 0x7f;
            size_t i;
            if (l == 126)
                l = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            else if (l == 127)
                for (l = 0, i = 2; i < 10; i++)
                    l = l << 8 | c->hdr[i];
            c->opcode = c->hdr[0] & 0x0f;
            c->left = l;
            c->hdr_need = 0;
            c->head_len = 0;
            /* control payloads and broadcast texts are small: keep them */
            c->keep = l <= sizeof c->head && (c->opcode >= 8 || mode == BROADCAST);
            if (l == 0) {
                on_frame_end(c);
                continue;
            }
        }
        size_t take = n < c->left ? n : (size_t)c->left;
        if (c->keep) {
            memcpy(c->head + c->head_len, p, take);
            c->head_len += take;
        }
        p += take;
        n -= take;
        c->left -= take;
        if (c->left == 0)
            on_frame_end(c);
    }
}

static void start_connect(conn_t *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        fail_conn(c, "connect failed");
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void on_event(conn_t *c, unsigned events)
{
    static unsigned char buf[1 << 18];
    if (c->state == CONNECTING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            fail_conn(c, strerror(err));
            return;
        }
        char req[1024];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: aHViYnViLWxvYWRnZW4tMQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         path, host, port);
        if (write(c->fd, req, n) != n) {
            fail_conn(c, "handshake write failed");
            return;
        }
        c->state = UPGRADING;
        want_write(c, 0);
        return;
    }
    if (events & EPOLLOUT && c->state == OPEN)
        flush_out(c);
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->state == CLOSED)
        return;
    for (;;) {
        ssize_t r = read(c->fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            if (c->state == OPEN)
                closed_by_peer++;
            fail_conn(c, r == 0 ? "connection closed" : "read failed");
            return;
        }
        if (r < 0)
            return;
        size_t off = 0;
        if (c->state == UPGRADING) {
            size_t room = sizeof c->head - 1 - c->head_len;
            size_t take = (size_t)r < room ? (size_t)r : room;
            memcpy(c->head + c->head_len, buf, take);
            c->head_len += take;
            c->head[c->head_len] = 0;
            char *end = strstr(c->head, "\r\n\r\n");
            if (!end) {
                if (take < (size_t)r)
                    fail_conn(c, "handshake response too long");
                continue;
            }
            if (strncmp(c->head, "HTTP/1.1 101", 12) != 0) {
                fail_conn(c, "handshake refused");
                return;
            }
            off = take - (c->head_len - (size_t)(end + 4 - c->head));
            c->head_len = 0;
            c->state = OPEN;
            opened++;
        }
        on_data(c, buf + off, r - off);
        if (c->state == OPEN && (c->out_frames || c->pong_len))
            flush_out(c);
        if ((size_t)r < sizeof buf)
            return;
    }
}

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++)
        on_event(evs[i].data.ptr, evs[i].events);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double q)
{
    if (!nsamples)
        return 0;
    size_t i = (size_t)(q * (nsamples - 1));
    return samples[i];
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen echo|broadcast|idle --url ws://HOST:PORT/PATH [--conns N] "
                    "[--size B] [--window W] [--binary] [--duration S] [--warmup S] "
                    "[--parallel P] [--hold S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    mode = !strcmp(argv[1], "echo") ? ECHO : !strcmp(argv[1], "broadcast") ? BROADCAST
         : !strcmp(argv[1], "idle") ? IDLE : -1;
    if (mode < 0)
        usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--binary")) { binary = 1; continue; }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--url")) {
            if (sscanf(v, "ws://%255[^:/]:%d%511s", host, &port, path) < 2) usage();
            if (!path[0]) strcpy(path, "/");
        } else if (!strcmp(a, "--conns")) nconns = atoi(v);
        else if (!strcmp(a, "--size")) size = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--window")) window = atoi(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--warmup")) warmup = atof(v);
        else if (!strcmp(a, "--parallel")) parallel = atoi(v);
        else if (!strcmp(a, "--hold")) hold = atof(v);
        else usage();
    }
    if (mode == BROADCAST && (size < 10 || window != 1)) {
        /* one frame buffer: the next broadcast is built once the last arrived */
        fprintf(stderr, "loadgen: broadcast needs --size >= 10 and --window 1\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    setvbuf(stdout, NULL, _IOLBF, 0);

    conns = calloc(nconns, sizeof *conns);
    samples = malloc(maxsamples * sizeof *samples);
    frame = malloc(size + 32);
    if (mode == BROADCAST) {
        build_broadcast_frame(0);
    } else {
        unsigned char *payload = malloc(size ? size : 1);
        memset(payload, 'x', size);
        frame_len = build_frame(frame, binary ? 2 : 1, payload, size);
        free(payload);
    }
    ep = epoll_create1(0);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        if (mode == ECHO) {
            conns[i].sent_cap = window + 1;
            conns[i].sent = calloc(conns[i].sent_cap, sizeof(double));
        }
    }

    /* Open the connections, at most `parallel` handshakes at a time. */
    double t0 = now();
    int next = 0;
    while ((int)(opened + failed) < nconns) {
        while (next < nconns && next - (int)(opened + failed) < parallel)
            start_connect(&conns[next++]);
        poll_once(100);
        if (now() - t0 > 60) {
            snprintf(last_error, sizeof last_error, "timeout while connecting");
            break;
        }
    }
    double open_time = now() - t0;
    if (!opened) {
        printf("{\"mode\":\"%s\",\"error\":\"no connection could be opened\",\"failed\":%llu,"
               "\"last_error\":\"%s\"}\n", argv[1], (unsigned long long)failed, last_error);
        return 1;
    }
    if (mode == IDLE) {
        printf("{\"event\":\"opened\",\"conns\":%d,\"open\":%llu,\"failed\":%llu,"
               "\"open_time_s\":%.4f}\n", nconns, (unsigned long long)opened,
               (unsigned long long)failed, open_time);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
        double end = now() + hold;
        int done = 0;
        while (!done && now() < end) {
            struct epoll_event evs[512];
            int n = epoll_wait(ep, evs, 512, 200);
            for (int i = 0; i < n; i++) {
                if (evs[i].data.ptr == NULL)
                    done = 1;
                else
                    on_event(evs[i].data.ptr, evs[i].events);
            }
        }
        uint64_t still = 0;
        for (int i = 0; i < nconns; i++)
            still += conns[i].state == OPEN;
        printf("{\"event\":\"done\",\"mode\":\"idle\",\"conns\":%d,\"open\":%llu,\"failed\":%llu,"
               "\"open_time_s\":%.4f,\"still_open_at_end\":%llu}\n", nconns,
               (unsigned long long)opened, (unsigned long long)failed, open_time,
               (unsigned long long)still);
        return 0;
    }

    /* Load: echo keeps `window` messages in flight per connection; broadcast
     * keeps `window` broadcasts outstanding from connection 0. */
    if (mode == ECHO) {
        for (int i = 0; i < nconns; i++)
            if (conns[i].state == OPEN) {
                for (int k = 0; k < window; k++)
                    send_message(&conns[i]);
                flush_out(&conns[i]);
            }
    } else {
        for (int k = 0; k < window && conns[0].state == OPEN; k++) {
            build_broadcast_frame(bseq);
            bsent[bseq % 64] = now();
            bgot[bseq % 64] = 0;
            bseq++;
            conns[0].out_frames++;
            flush_out(&conns[0]);
        }
    }
    double start = now(), mstart = start + warmup, mend = mstart + duration;
    struct rusage ru0, ru1;
    while (now() < mend) {
        if (!measuring && now() >= mstart) {
            measuring = 1;
            getrusage(RUSAGE_SELF, &ru0);
            printf("{\"event\":\"measure_start\"}\n");
            mstart = now();
            mend = mstart + duration;
        }
        poll_once(10);
    }
    double elapsed = now() - mstart;
    getrusage(RUSAGE_SELF, &ru1);
    printf("{\"event\":\"measure_end\"}\n");
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec)
               + 1e-6 * ((ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec));
    qsort(samples, nsamples, sizeof *samples, cmp_double);
    double rate = received / elapsed;
    printf("{\"mode\":\"%s\",\"conns\":%d,\"open\":%llu,\"failed\":%llu,\"size\":%zu,\"window\":%d,"
           "\"elapsed_s\":%.4f,\"messages\":%llu,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,"
           "\"gen_cpu_pct\":%.1f,\"open_time_s\":%.4f,\"closed_by_peer\":%llu,\"last_error\":\"%s\","
           "\"%s\":{\"n\":%zu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f}}\n",
           argv[1], nconns, (unsigned long long)opened, (unsigned long long)failed, size, window,
           elapsed, (unsigned long long)received, rate, rate * size / 1e6, 100 * cpu / elapsed,
           open_time, (unsigned long long)closed_by_peer, last_error,
           mode == ECHO ? "lat_us" : "fanout_us", nsamples, pct(0.5), pct(0.9), pct(0.99),
           nsamples ? samples[nsamples - 1] : 0.0);
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) {
            struct linger l = {1, 0}; /* RST: no TIME_WAIT pile-up across runs */
            setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            close(conns[i].fd);
        }
    return 0;
}
