/* A scanner's flood at Caddy: TLS ClientHellos with random SNI names, from many connections at
 * once (epoll), and beside them a timed ask of an allowed name at the ask server every few ms.
 *
 * The ClientHello is OpenSSL's own, made once through memory BIOs with a placeholder SNI of fixed
 * length; each connection sends it with fresh random letters in place of the placeholder. Caddy
 * asks about the name before it answers, so everything past the ClientHello (key exchange) is
 * never reached for a denied name, and the generator spends its CPU on sockets alone.
 *
 * With FLOOD_HTTP=1 in the environment it sends asks instead, straight at an ask server's port:
 * `GET /tls-ask?domain=<random>.flood.test` as Go's client sends it, read whole, then closed by
 * the client, one connection each: the ask server's own cost at Caddy's calling pattern.
 *
 * FLOOD_PROBE_STATUS=N makes N the status a probe must get to count (200 by default): the
 * baseline rounds time an ask of Caddy's own static 403 the same way.
 *
 * Built at bench time (bench/caddyflood.py): cc -O2 -o flood flood.c -lssl -lcrypto
 * Usage: flood HOST PORT SECONDS CONNECTIONS [ASK_PORT ALLOWED_NAME PROBE_MS]
 * Prints one JSON line of counts and the probe latencies' percentiles.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LABEL 16
#define PLACEHOLDER "aaaaaaaaaaaaaaaa.flood.test"
#define MAX_CONNS 1024
#define MAX_PROBES 200000
#define PROBE_TAG (MAX_CONNS + 1)

static unsigned char hello[8192];
static int hello_len, sni_at, http_mode;
static struct sockaddr_in target, ask_target;
static uint64_t rng = 88172645463325252ULL;

struct conn { int fd; int connected; int first; };
static struct conn conns[MAX_CONNS];
static long hellos, denied, served, closed_silently, errors;

static struct { int fd; double started; int status; int connected; } probe = {-1, 0, 0, 0};
static double probe_us[MAX_PROBES];
static long probes, probe_bad;
static int probe_expect = 200;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t next_random(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

static void build_ask(int port) {
    hello_len = snprintf((char *)hello, sizeof hello,
                         "GET /tls-ask?domain=" PLACEHOLDER " HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                         "User-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
                         port);
    sni_at = strlen("GET /tls-ask?domain=");
}

static void build_hello(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, in, out);
    SSL_set_tlsext_host_name(ssl, PLACEHOLDER);
    SSL_connect(ssl); /* wants to read: the ClientHello is in `out` */
    hello_len = BIO_read(out, hello, sizeof hello);
    unsigned char *at = memmem(hello, hello_len, PLACEHOLDER, strlen(PLACEHOLDER));
    if (hello_len <= 0 || at == NULL) { fprintf(stderr, "no ClientHello\n"); exit(2); }
    sni_at = at - hello;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

static int open_to(struct sockaddr_in *to, int epfd, uint64_t tag) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Spread source addresses over 127/8: a few thousand handshakes a second would otherwise
     * run out of ephemeral ports to one destination. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in from = {.sin_family = AF_INET};
    from.sin_addr.s_addr = htonl(0x7f000000u | (2 + next_random() % 250) << 8 | 1);
    bind(fd, (struct sockaddr *)&from, sizeof from);
    if (connect(fd, (struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = tag};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return fd;
}

static void start(int epfd, int i) {
    conns[i].fd = open_to(&target, epfd, i);
    conns[i].connected = 0;
    conns[i].first = -1;
    if (conns[i].fd < 0) errors++;
}

static void finish(int epfd, int i) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, conns[i].fd, NULL);
    close(conns[i].fd);
    if (conns[i].first == 0x15 || conns[i].first == '4') denied++; /* TLS alert, or 403 */
    else if (conns[i].first == 0x16 || conns[i].first == '2') served++; /* allowed */
    else if (conns[i].connected) closed_silently++;
    start(epfd, i);
}

static void on_conn(int epfd, int i, uint32_t events) {
    struct conn *c = &conns[i];
    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            errors++;
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            start(epfd, i);
            return;
        }
        unsigned char mine[sizeof hello];
        memcpy(mine, hello, hello_len);
        for (int k = 0; k < LABEL; k++) mine[sni_at + k] = 'a' + next_random() % 26;
        c->connected = 1;
        if (write(c->fd, mine, hello_len) != hello_len) { errors++; finish(epfd, i); return; }
        hellos++;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    unsigned char buf[16384];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
            if (http_mode) {
                /* One write holds the gate's whole answer: the status digit, then close. */
                c->first = n > 9 ? buf[9] : -2;
                finish(epfd, i);
                return;
            }
            if (c->first < 0) c->first = buf[0];
            if (c->first == 0x16) { finish(epfd, i); return; } /* allowed: no need to go on */
            continue;
        }
        if (n < 0 && errno == EAGAIN) return;
        finish(epfd, i); /* EOF or reset: the server is done with it */
        return;
    }
}

static void probe_start(int epfd, const char *name, char *request, size_t cap) {
    snprintf(request, cap,
             "GET /tls-ask?domain=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "User-Agent: Go-http-client/1.1\r\nConnection: close\r\n\r\n", name);
    probe.started = now();
    probe.status = 0;
    probe.connected = 0;
    probe.fd = open_to(&ask_target, epfd, PROBE_TAG);
    if (probe.fd < 0) probe_bad++;
}

static void probe_event(int epfd, const char *request) {
    if (!probe.connected) {
        probe.connected = 1;
        if (write(probe.fd, request, strlen(request)) < 0) probe.status = -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = PROBE_TAG};
        epoll_ctl(epfd, EPOLL_CTL_MOD, probe.fd, &ev);
        return;
    }
    char buf[4096];
    for (;;) {
        ssize_t n = read(probe.fd, buf, sizeof buf);
        if (n > 0) {
            if (probe.status == 0 && n >= 12) probe.status = atoi(buf + 9);
            continue;
        }
        if (n < 0 && errno == EAGAIN) return;
        break;
    }
    double took = now() - probe.started;
    epoll_ctl(epfd, EPOLL_CTL_DEL, probe.fd, NULL);
    close(probe.fd);
    probe.fd = -1;
    if (probe.status != probe_expect) probe_bad++;
    else if (probes < MAX_PROBES) probe_us[probes++] = took * 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double p) {
    if (!probes) return -1;
    long k = (long)(p * (probes - 1) + 0.5);
    return probe_us[k];
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 8) {
        fprintf(stderr, "usage: %s HOST TLS_PORT SECONDS CONNECTIONS "
                        "[ASK_PORT ALLOWED_NAME PROBE_MS]\n", argv[0]);
        return 2;
    }
    target.sin_family = AF_INET;
    inet_pton(AF_INET, argv[1], &target.sin_addr);
    target.sin_port = htons(atoi(argv[2]));
    double seconds = atof(argv[3]);
    int n = atoi(argv[4]);
    if (n > MAX_CONNS) n = MAX_CONNS;
    const char *allowed = NULL;
    double every = 0;
    char request[512];
    if (argc == 8) {
        ask_target = target;
        ask_target.sin_port = htons(atoi(argv[5]));
        allowed = argv[6];
        every = atof(argv[7]) / 1000;
    }
    rng ^= (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
    http_mode = getenv("FLOOD_HTTP") != NULL;
    if (getenv("FLOOD_PROBE_STATUS")) probe_expect = atoi(getenv("FLOOD_PROBE_STATUS"));
    if (http_mode) build_ask(atoi(argv[2]));
    else build_hello();
    int epfd = epoll_create1(0);
    for (int i = 0; i < n; i++) start(epfd, i);
    double began = now(), next_probe = began + every;
    struct epoll_event events[256];
    while (now() - began < seconds) {
        int got = epoll_wait(epfd, events, 256, 5);
        for (int k = 0; k < got; k++) {
            uint64_t tag = events[k].data.u64;
            if (tag == PROBE_TAG) probe_event(epfd, request);
            else on_conn(epfd, (int)tag, events[k].events);
        }
        if (allowed && probe.fd < 0 && now() >= next_probe) {
            next_probe += every;
            probe_start(epfd, allowed, request, sizeof request);
        }
    }
    double took = now() - began;
    qsort(probe_us, probes, sizeof probe_us[0], by_value);
    printf("{\"seconds\": %.3f, \"hellos\": %ld, \"denied\": %ld, \"served\": %ld, "
           "\"closed_silently\": %ld, \"errors\": %ld, \"probes\": %ld, \"probe_bad\": %ld, "
           "\"probe_p50_us\": %.1f, \"probe_p99_us\": %.1f, \"probe_max_us\": %.1f}\n",
           took, hellos, denied, served, closed_silently, errors, probes, probe_bad,
           percentile(0.5), percentile(0.99), probes ? probe_us[probes - 1] : -1.0);
    return 0;
}
