/*
 * hub_loadgen.c - the C client side of benchmarks/hub_bench.py.
 *
 * Theory of operation
 * -------------------
 * One process, one thread, epoll, non-blocking sockets, holding its share of
 * the hub benchmark's connections (users u<i> for i = wid, wid + procs, ...
 * below --conns). It does what hub_bench_clients.py does, for a fraction of
 * the CPU, so that the hub is what the benchmark measures:
 *   - handshake by hand, then hubbub.json.v1 "connect" (development mode: a
 *     bare name) and, for fanout, "subscribe" to bench:fanout;
 *   - client frames use the all-zero masking key (RFC 6455 section 5.3 lets
 *     the client choose; on loopback nothing is gained by a random one), so
 *     masking costs nothing; pings are answered with pongs (section 5.5.2);
 *   - pushes are never JSON-decoded: the payload's "data" is
 *     "S<seq:10>T<time_ns:19>xxx...", found with memmem and read by hand;
 *   - reads go to one scratch buffer; only an incomplete frame's bytes are
 *     kept per connection until the rest arrives.
 *
 * With --protocol socketio it is the client of benchmarks/socketio/server.js
 * instead (socket.io v4 over the websocket transport, Engine.IO protocol 4):
 * GET /socket.io/?EIO=4&transport=websocket, the server's open packet "0{...}"
 * answered by the namespace connect "40{"user":"u<i>"}", "42<id>["subscribe",
 * ...]" / "42<id>["send",{...}]" acknowledged by "43<id>[...]", pushes
 * "42["pub"|"message",{...,"data":"S..."}]", and Engine.IO pings "2" answered
 * by "3". The same counters, the same "data" markers.
 *
 * Coordination with the runner goes through a shared file (--shm) of 64-bit
 * slots, the same layout the Python clients use: phase, final_seq, then
 * arrays of --procs slots: opened, progress, sent_live, done, received.
 * At the end it prints one JSON line (counters) and writes the latency
 * samples, int64 nanoseconds, to --lat-out (and the cross-node ones to
 * --lat-out with ".cross" appended).
 *
 * Build: gcc -O2 -o hub_loadgen hub_loadgen.c
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
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CONNECTING_PHASE, READY_PHASE, RUNNING, MEASURING, DRAINING };
enum { S_CLOSED, S_TCP, S_UPGRADING, S_CONNECT, S_SUBSCRIBE, S_OPEN };
enum { FANOUT, DIRECT };

typedef struct {
    int fd, state, node, user, sample;
    unsigned char *in;      /* bytes of an incomplete frame, kept between reads */
    size_t in_len, in_cap;
    unsigned char *out;     /* bytes the socket did not take yet */
    size_t out_len, out_cap;
    int64_t last_seq;
    int64_t count;
} conn_t;

static int scenario = FANOUT, nconns_total = 0, wid = 0, procs = 1, window = 2;
static int socketio = 0; /* --protocol socketio */
static int parallel = 200, payload = 100, sample_stride = 1, nports = 0;
static double rate = 0, connect_timeout = 300, drain = 30;
static int ports[64];
static const char *shm_path = NULL, *lat_out = NULL;
static volatile int64_t *shm;
static conn_t *conns;
static int nconns = 0, ep;
static unsigned char scratch[1 << 18];
static int64_t *lat, *lat_cross;
static size_t nlat = 0, caplat = 0, nlat_cross = 0, caplat_cross = 0;
static int64_t deliveries = 0, total = 0, sent_live = 0, sent_other = 0, closed = 0;
static int64_t inflight = 0, next_rid = 10, opened = 0, failed_open = 0, live = 0, handshaking = 0;
static int close_codes[20], nclose_codes = 0;
static char errors[5][200];
static int nerrors = 0;
static uint64_t rng_state = 88172645463325252ull;
/* fan-out window: receptions per sequence number, modulo RING */
#define RING 4096
static int64_t reached[RING], low = 0;

#define PHASE shm[0]
#define FINAL_SEQ shm[1]
#define SLOT(array, i) shm[2 + (array) * procs + (i)]
enum { OPENED, PROGRESS, SENT_LIVE, DONE, RECEIVED };

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void add_error(const char *text, size_t n)
{
    if (nerrors >= 5)
        return;
    if (n > 150)
        n = 150;
    size_t j = 0;
    for (size_t i = 0; i < n && j < 190; i++) {
        char ch = text[i];
        if (ch == '"' || ch == '\\' || (unsigned char)ch < 32)
            ch = '?';
        errors[nerrors][j++] = ch;
    }
    errors[nerrors][j] = 0;
    nerrors++;
}

static void push_lat(int64_t **arr, size_t *n, size_t *cap, int64_t v)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1 << 16;
        *arr = realloc(*arr, *cap * sizeof(int64_t));
        if (!*arr) {
            perror("realloc");
            exit(2);
        }
    }
    (*arr)[(*n)++] = v;
}

static void want_write(conn_t *c, int on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_lost(conn_t *c)
{
    if (c->state == S_CLOSED)
        return;
    if (c->state != S_OPEN) {
        failed_open++;
        handshaking--;
    } else {
        live--;
    }
    c->state = S_CLOSED;
    closed++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static void send_bytes(conn_t *c, const unsigned char *p, size_t n)
{
    if (c->state == S_CLOSED)
        return;
    if (c->out_len == 0) {
        ssize_t w = write(c->fd, p, n);
        if (w == (ssize_t)n)
            return;
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_lost(c);
                return;
            }
            w = 0;
        }
        p += w;
        n -= (size_t)w;
        want_write(c, 1);
    }
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void flush_out(conn_t *c)
{
    while (c->out_len) {
        ssize_t w = write(c->fd, c->out, c->out_len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_lost(c);
            return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
    want_write(c, 0);
}

/* A text frame with the zero masking key (RFC 6455 sections 5.2, 5.3). */
static void send_text(conn_t *c, const char *text, size_t n)
{
    unsigned char frame[16 + 4096];
    size_t h;
    if (n > 4096)
        n = 4096;
    frame[0] = 0x81;
    if (n < 126) {
        frame[1] = 0x80 | (unsigned char)n;
        h = 2;
    } else {
        frame[1] = 0x80 | 126;
        frame[2] = (unsigned char)(n >> 8);
        frame[3] = (unsigned char)n;
        h = 4;
    }
    memset(frame + h, 0, 4);
    memcpy(frame + h + 4, text, n);
    send_bytes(c, frame, h + 4 + n);
}

static size_t make_data(char *out, int64_t seq)
{
    int n = sprintf(out, "S%010lldT%019lld", (long long)seq, (long long)now_ns());
    while (n < payload)
        out[n++] = 'x';
    out[n] = 0;
    return (size_t)n;
}

static void send_request(conn_t *c, int64_t rid, const char *method, const char *params)
{
    char buf[4096];
    int n;
    if (socketio) /* an event with an acknowledgement id: 42<id>["method",params] */
        n = snprintf(buf, sizeof buf, "42%lld[\"%s\",%s]", (long long)rid, method, params);
    else
        n = snprintf(buf, sizeof buf, "{\"id\":%lld,\"method\":\"%s\",\"params\":%s}",
                     (long long)rid, method, params);
    send_text(c, buf, (size_t)n);
}

static void send_one(void)
{
    /* a random connection of ours sends to a random other user of the whole run */
    conn_t *c = NULL;
    for (int tries = 0; tries < 8 && (c == NULL || c->state != S_OPEN); tries++)
        c = &conns[rnd() % (uint64_t)nconns];
    if (c == NULL || c->state != S_OPEN)
        return;
    int64_t target = (int64_t)(rnd() % (uint64_t)(nconns_total - 1));
    if (target >= c->user)
        target++;
    char data[4200], params[4400];
    make_data(data, 0);
    snprintf(params, sizeof params, "{\"to\":[\"u%lld\"],\"data\":\"%s\"}", (long long)target,
             data);
    next_rid++;
    inflight++;
    send_request(c, next_rid, "send", params);
}

static int64_t read_digits(const unsigned char *p, int n)
{
    int64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

static void on_reply(conn_t *c, const unsigned char *p, size_t n, int64_t rid, int ok);
static void on_push(conn_t *c, const unsigned char *p, size_t n, int64_t t);

/* socket.io: Engine.IO packet type, then Socket.IO packet type (see the top). */
static void on_socketio_text(conn_t *c, const unsigned char *p, size_t n, int64_t t)
{
    if (n >= 1 && p[0] == '2') { /* Engine.IO ping: pong */
        send_text(c, "3", 1);
        return;
    }
    if (n >= 1 && p[0] == '0') { /* Engine.IO open: connect to the namespace */
        char auth[64];
        int k = snprintf(auth, sizeof auth, "40{\"user\":\"u%d\"}", c->user);
        send_text(c, auth, (size_t)k);
        return;
    }
    if (n >= 2 && p[0] == '4' && p[1] == '0') { /* namespace connected */
        on_reply(c, p, n, 1, 1);
        return;
    }
    if (n >= 2 && p[0] == '4' && p[1] == '4') { /* connect refused */
        on_reply(c, p, n, 1, 0);
        return;
    }
    if (n >= 3 && p[0] == '4' && p[1] == '3') { /* acknowledgement 43<id>[...] */
        int64_t rid = 0;
        size_t i = 2;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            rid = rid * 10 + (p[i++] - '0');
        on_reply(c, p, n, rid, 1);
        return;
    }
    if (n > 16 && (memcmp(p, "42[\"pub\"", 8) == 0 || memcmp(p, "42[\"message\"", 12) == 0))
        on_push(c, p, n, t);
}

static void on_text(conn_t *c, const unsigned char *p, size_t n, int64_t t)
{
    if (socketio) {
        on_socketio_text(c, p, n, t);
        return;
    }
    if (n > 6 && memcmp(p, "{\"id\":", 6) == 0) {
        int64_t rid = 0;
        size_t i = 6;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            rid = rid * 10 + (p[i++] - '0');
        on_reply(c, p, n, rid, memmem(p, n, "\"result\"", 8) != NULL);
        return;
    }
    if (n > 16 && (memcmp(p, "{\"push\":\"pub\"", 13) == 0 ||
                   memcmp(p, "{\"push\":\"message\"", 17) == 0))
        on_push(c, p, n, t);
}

/* The answer to request rid (1: connect, 2: subscribe, others: send). */
static void on_reply(conn_t *c, const unsigned char *p, size_t n, int64_t rid, int ok)
{
    {
        if (rid == 1 || rid == 2) {
            if (!ok) {
                add_error((const char *)p, n);
                conn_lost(c);
                return;
            }
            if (rid == 1 && scenario == FANOUT) {
                c->state = S_SUBSCRIBE;
                send_request(c, 2, "subscribe", "{\"channel\":\"bench:fanout\"}");
            } else {
                c->state = S_OPEN;
                opened++;
                live++;
                handshaking--;
                SLOT(OPENED, wid) = opened;
            }
            return;
        }
        inflight--;
        if (memmem(p, n, "\"status\":\"live\"", 15))
            sent_live++;
        else {
            sent_other++;
            add_error((const char *)p, n);
        }
        int64_t phase = PHASE;
        if (rate == 0 && (phase == RUNNING || phase == MEASURING))
            send_one();
    }
}

/* A publication or a direct message: its "data" is read by position. */
static void on_push(conn_t *c, const unsigned char *p, size_t n, int64_t t)
{
    {
        const unsigned char *d = memmem(p, n, "\"data\":\"S", 9);
        if (d == NULL || (size_t)(d - p) + 9 + 30 > n)
            return;
        int64_t seq = read_digits(d + 9, 10);
        c->last_seq = seq;
        c->count++;
        total++;
        if (scenario == FANOUT)
            reached[seq % RING]++;
        if (PHASE == MEASURING) {
            deliveries++;
            if (c->sample) {
                int64_t latency = t - read_digits(d + 20, 19);
                push_lat(&lat, &nlat, &caplat, latency);
                if (c->node)
                    push_lat(&lat_cross, &nlat_cross, &caplat_cross, latency);
            }
        }
    }
}

/* Parse every complete frame of p[0..n); return how many bytes were used. */
static size_t parse_frames(conn_t *c, const unsigned char *p, size_t n, int64_t t)
{
    size_t pos = 0;
    while (n - pos >= 2 && c->state != S_CLOSED) {
        unsigned b0 = p[pos], b1 = p[pos + 1];
        uint64_t len = b1 & 0x7F;
        size_t start = pos + 2;
        if (len == 126) {
            if (n - pos < 4)
                break;
            len = ((uint64_t)p[pos + 2] << 8) | p[pos + 3];
            start = pos + 4;
        } else if (len == 127) {
            if (n - pos < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[pos + 2 + i];
            start = pos + 10;
        }
        if (n - start < len)
            break;
        unsigned opcode = b0 & 0x0F;
        if (opcode == 1) {
            /* the hub never fragments its pushes: section 5.4 allows it, but
               then this client only counts what it can read */
            on_text(c, p + start, (size_t)len, t);
        } else if (opcode == 9 && len <= 125) {
            unsigned char pong[6 + 125];
            pong[0] = 0x8A;
            pong[1] = 0x80 | (unsigned char)len;
            memset(pong + 2, 0, 4);
            memcpy(pong + 6, p + start, len);
            send_bytes(c, pong, 6 + len);
        } else if (opcode == 8) {
            if (nclose_codes < 20)
                close_codes[nclose_codes++] = len >= 2 ? (p[start] << 8) | p[start + 1] : 1005;
        }
        pos = start + (size_t)len;
    }
    return pos;
}

static void on_readable(conn_t *c)
{
    for (;;) {
        ssize_t r = read(c->fd, scratch, sizeof scratch);
        if (r == 0) {
            conn_lost(c);
            return;
        }
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_lost(c);
            return;
        }
        int64_t t = now_ns();
        const unsigned char *p = scratch;
        size_t n = (size_t)r;
        if (c->in_len) { /* an incomplete frame was waiting for these bytes */
            if (c->in_len + n > c->in_cap) {
                c->in_cap = (c->in_len + n) * 2;
                c->in = realloc(c->in, c->in_cap);
            }
            memcpy(c->in + c->in_len, p, n);
            c->in_len += n;
            p = c->in;
            n = c->in_len;
        }
        if (c->state == S_UPGRADING) {
            const unsigned char *end = memmem(p, n, "\r\n\r\n", 4);
            if (end == NULL) {
                if (p == scratch) {
                    c->in = realloc(c->in, c->in_cap = n * 2 + 64);
                    memcpy(c->in, p, n);
                    c->in_len = n;
                }
                continue;
            }
            if (n < 13 || memcmp(p + 8, " 101 ", 5) != 0) {
                add_error((const char *)p, n);
                conn_lost(c);
                return;
            }
            size_t used = (size_t)(end + 4 - p);
            c->state = S_CONNECT;
            if (!socketio) { /* socket.io: the server speaks first ("0{...}") */
                char params[64];
                snprintf(params, sizeof params, "{\"name\":\"u%d\"}", c->user);
                send_request(c, 1, "connect", params);
            }
            size_t rest = n - used;
            memmove(scratch, p + used, rest); /* p may be c->in or scratch */
            c->in_len = 0;
            p = scratch;
            n = rest;
        }
        size_t used = parse_frames(c, p, n, t);
        if (c->state == S_CLOSED)
            return;
        size_t rest = n - used;
        if (rest && p == c->in) {
            memmove(c->in, c->in + used, rest);
        } else if (rest) {
            if (rest > c->in_cap) {
                c->in_cap = rest * 2;
                c->in = realloc(c->in, c->in_cap);
            }
            memcpy(c->in, p + used, rest);
        }
        c->in_len = rest;
        if ((size_t)r < sizeof scratch)
            return;
    }
}

static void start_connect(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        perror("socket");
        exit(2);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(ports[c->node])};
    a.sin_addr.s_addr = htonl(0x7F000001);
    c->state = S_TCP;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)
        conn_lost(c);
}

static void on_event(conn_t *c, unsigned events)
{
    if (c->state == S_TCP && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            conn_lost(c);
            return;
        }
        static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\n%s\r\n",
                         socketio ? "/socket.io/?EIO=4&transport=websocket" : "/", key,
                         socketio ? "" : "Sec-WebSocket-Protocol: hubbub.json.v1\r\n");
        c->state = S_UPGRADING;
        want_write(c, 0);
        send_bytes(c, (const unsigned char *)req, (size_t)n);
        return;
    }
    if (events & EPOLLOUT)
        flush_out(c);
    if (c->state != S_CLOSED && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        on_readable(c);
}

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++)
        on_event(evs[i].data.ptr, evs[i].events);
}

static void update_progress(void)
{
    /* each connection receives the publications in order: the lowest sequence
       number every connection reached is the highest one all of them counted */
    while (live && reached[(low + 1) % RING] >= live) {
        low++;
        reached[low % RING] = 0;
    }
    SLOT(PROGRESS, wid) = low;
}

static void write_lat(const char *path, const int64_t *a, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (n)
        fwrite(a, sizeof(int64_t), n, f);
    fclose(f);
}

static void usage(void)
{
    fprintf(stderr, "usage: hub_loadgen --shm PATH --lat-out PATH --ports P[,P...] --scenario "
                    "fanout|direct --conns N [--wid W --procs P --window W --rate R --payload B "
                    "--sample-stride S --parallel N --connect-timeout S --drain S "
                    "--protocol hubbub|socketio]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--shm"))
            shm_path = v;
        else if (!strcmp(a, "--lat-out"))
            lat_out = v;
        else if (!strcmp(a, "--scenario"))
            scenario = !strcmp(v, "direct") ? DIRECT : FANOUT;
        else if (!strcmp(a, "--conns"))
            nconns_total = atoi(v);
        else if (!strcmp(a, "--wid"))
            wid = atoi(v);
        else if (!strcmp(a, "--procs"))
            procs = atoi(v);
        else if (!strcmp(a, "--window"))
            window = atoi(v);
        else if (!strcmp(a, "--rate"))
            rate = strcmp(v, "max") ? atof(v) : 0;
        else if (!strcmp(a, "--payload"))
            payload = atoi(v);
        else if (!strcmp(a, "--sample-stride"))
            sample_stride = atoi(v) > 0 ? atoi(v) : 1;
        else if (!strcmp(a, "--parallel"))
            parallel = atoi(v);
        else if (!strcmp(a, "--connect-timeout"))
            connect_timeout = atof(v);
        else if (!strcmp(a, "--protocol"))
            socketio = !strcmp(v, "socketio");
        else if (!strcmp(a, "--drain"))
            drain = atof(v);
        else if (!strcmp(a, "--ports")) {
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && nports < 64;
                 t = strtok_r(NULL, ",", &save))
                ports[nports++] = atoi(t);
        } else
            usage();
    }
    if (!shm_path || !lat_out || !nports || nconns_total < 2 || payload < 30 || payload > 4000)
        usage();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int sfd = open(shm_path, O_RDWR);
    if (sfd < 0) {
        perror(shm_path);
        return 2;
    }
    shm = mmap(NULL, (size_t)(2 + 5 * procs) * 8, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    if (shm == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    rng_state ^= (uint64_t)(wid + 1) * 0x9E3779B97F4A7C15ull;
    ep = epoll_create1(0);
    conns = calloc((size_t)nconns_total / (size_t)procs + 1, sizeof(conn_t));
    for (int u = wid; u < nconns_total; u += procs) {
        conn_t *c = &conns[nconns];
        c->user = u;
        c->node = u % nports;
        c->state = S_CLOSED;
        c->sample = nconns % sample_stride == 0;
        nconns++;
    }
    /* connect, at most --parallel handshakes in flight */
    double deadline = mono() + connect_timeout;
    int next = 0;
    while (opened < nconns) {
        while (next < nconns && handshaking < parallel) {
            handshaking++;
            start_connect(&conns[next++]);
        }
        if (failed_open || mono() > deadline) {
            printf("{\"error\":\"only %lld/%d connections opened\",\"errors\":[\"%s\"]}\n",
                   (long long)opened, nconns, nerrors ? errors[0] : "");
            return 1;
        }
        poll_once(5);
    }
    while (PHASE < RUNNING)
        poll_once(5);
    double per_tick = rate / procs / 100, owed = 0, next_tick = mono();
    if (scenario == DIRECT && rate == 0)
        for (int i = 0; i < window; i++)
            send_one();
    while (PHASE == RUNNING || PHASE == MEASURING) {
        poll_once(1);
        if (scenario == FANOUT)
            update_progress();
        else if (rate > 0 && mono() >= next_tick) {
            next_tick += 0.01;
            owed += per_tick;
            while (owed >= 1) {
                owed -= 1;
                send_one();
            }
        }
    }
    /* drain: what is in flight (bounded by --drain) */
    double end = mono() + drain;
    while (scenario == DIRECT && inflight > 0 && mono() < end)
        poll_once(5);
    SLOT(SENT_LIVE, wid) = sent_live;
    SLOT(DONE, wid) = 1;
    while (mono() < end) {
        SLOT(RECEIVED, wid) = total;
        if (scenario == FANOUT) {
            int all = 1;
            for (int i = 0; i < nconns && all; i++)
                all = conns[i].last_seq >= FINAL_SEQ;
            if (all)
                break;
        } else {
            int64_t done = 0, received = 0, live = 0;
            for (int i = 0; i < procs; i++) {
                done += SLOT(DONE, i);
                received += SLOT(RECEIVED, i);
                live += SLOT(SENT_LIVE, i);
            }
            if (done == procs && received >= live)
                break;
        }
        poll_once(5);
    }
    SLOT(RECEIVED, wid) = total;
    write_lat(lat_out, lat, nlat);
    char cross_path[4096];
    snprintf(cross_path, sizeof cross_path, "%s.cross", lat_out);
    write_lat(cross_path, lat_cross, nlat_cross);
    printf("{\"wid\":%d,\"deliveries\":%lld,\"total\":%lld,\"sent_live\":%lld,\"sent_other\":%lld,"
           "\"closed\":%lld,\"close_codes\":[",
           wid, (long long)deliveries, (long long)total, (long long)sent_live,
           (long long)sent_other, (long long)closed);
    for (int i = 0; i < nclose_codes; i++)
        printf("%s%d", i ? "," : "", close_codes[i]);
    printf("],\"errors\":[");
    for (int i = 0; i < nerrors; i++)
        printf("%s\"%s\"", i ? "," : "", errors[i]);
    printf("],\"counts\":[");
    for (int i = 0; i < nconns; i++)
        printf("%s%lld", i ? "," : "", (long long)conns[i].count);
    printf("],\"nodes\":[");
    for (int i = 0; i < nconns; i++)
        printf("%s%d", i ? "," : "", conns[i].node);
    printf("]}\n");
    fflush(stdout);
    for (int i = 0; i < nconns; i++)
        if (conns[i].state != S_CLOSED)
            close(conns[i].fd);
    return 0;
}
