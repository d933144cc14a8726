/*
 * echo_upper: a tether service in C that sends every message back
 * uppercased, nested in the program's own poll() loop.
 *
 * The loop watches three descriptors of its own and one of tether's:
 *   - tether_fd(t): readable when tether has socket events; the poll timeout
 *     is tether_timeout_ms(t), and tether_step(t) runs one turn after every
 *     wake-up;
 *   - a 1 s timerfd, the program's own timer, which counts and logs ticks;
 *   - a self-pipe written by the SIGTERM/SIGINT handler, which only calls
 *     tether_stop(t) (async-signal-safe) and writes one byte to wake poll.
 * After a stop, tether closes every connection with GOAWAY SHUTTING_DOWN;
 * the program exits 0 once tether_is_stopped(t) says all are gone.
 *
 * Usage:
 *   echo_upper [--listen IP:PORT] [--heartbeat-ms N] [--min-heartbeat-ms N]
 *              [--miss N] [--handshake-timeout-ms N] [--linger-ms N] [--tick-ms N]
 *              [--tls-listen IP:PORT --tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
 * Prints "listening on IP:PORT" on stdout once ready (then, with --tls-listen,
 * "listening on IP:PORT tls"); logs go to stderr. With --tls-client-ca, each
 * client's certificate name is logged as it connects.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "tether.h"

/* The handle the signal handler stops; set before the handler is installed. */
static tether_t *volatile g_tether;
/* The write end of the self-pipe that wakes poll() after a signal. */
static volatile int g_wake_fd = -1;

/* What the callbacks share, reached through their `void *user`. */
struct service {
    unsigned long opened;
    unsigned long messages;
};

static void on_signal(int sig) {
    (void)sig;
    int saved = errno;
    tether_stop(g_tether); /* async-signal-safe: a flag and an eventfd write */
    if (g_wake_fd >= 0) {
        char byte = 1;
        ssize_t ignored = write(g_wake_fd, &byte, 1);
        (void)ignored;
    }
    errno = saved;
}

static void on_open(void *user, tether_ctx_t *ctx, uint64_t conn) {
    struct service *svc = user;
    char peer[64] = "?";
    tether_ctx_peer_addr(ctx, conn, peer, sizeof peer);
    svc->opened++;
    int version = tether_ctx_version(ctx, conn);
    char who[256];
    if (tether_ctx_peer_identity(ctx, conn, who, sizeof who) > 0) {
        fprintf(stderr, "open %llu from %s (protocol v%d) as %s\n", (unsigned long long)conn,
                peer, version, who);
    } else {
        fprintf(stderr, "open %llu from %s (protocol v%d)\n", (unsigned long long)conn, peer,
                version);
    }
}

static void on_message(void *user, tether_ctx_t *ctx, uint64_t conn, const uint8_t *data,
                       size_t len) {
    struct service *svc = user;
    svc->messages++;
    /* `data` is valid only during this call; the reply is built in our own
     * buffer, which tether_ctx_send copies, so we free it right after. */
    uint8_t *upper = malloc(len ? len : 1);
    if (upper == NULL) {
        tether_ctx_close(ctx, conn, TETHER_GOAWAY_SERVER_FULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < len; i++) {
        upper[i] = (uint8_t)toupper(data[i]);
    }
    int rc = tether_ctx_send(ctx, conn, upper, len);
    if (rc != TETHER_OK) {
        fprintf(stderr, "send to %llu: %s\n", (unsigned long long)conn, tether_strerror(rc));
    }
    free(upper);
}

static void on_close(void *user, tether_ctx_t *ctx, uint64_t conn, int reason) {
    (void)user;
    (void)ctx;
    if (reason >= TETHER_CLOSE_BY_PEER) {
        fprintf(stderr, "close %llu: peer sent GOAWAY %d\n", (unsigned long long)conn,
                reason - TETHER_CLOSE_BY_PEER);
    } else if (reason == TETHER_CLOSE_PEER_EOF) {
        fprintf(stderr, "close %llu: peer EOF\n", (unsigned long long)conn);
    } else if (reason == TETHER_CLOSE_RESET) {
        fprintf(stderr, "close %llu: reset\n", (unsigned long long)conn);
    } else {
        fprintf(stderr, "close %llu: sent GOAWAY %d\n", (unsigned long long)conn, reason);
    }
}

/* Parses a non-negative decimal flag value, exiting with status 2 if bad. */
static uint32_t parse_u32(const char *flag, const char *value) {
    char *end = NULL;
    errno = 0;
    unsigned long n = value ? strtoul(value, &end, 10) : 0;
    if (value == NULL || *value == '\0' || *end != '\0' || errno != 0 || n > UINT32_MAX) {
        fprintf(stderr, "echo_upper: %s needs a number, got %s\n", flag, value ? value : "nothing");
        exit(2);
    }
    return (uint32_t)n;
}

static int die(const char *what, int rc) {
    fprintf(stderr, "echo_upper: %s: %s (errno: %s)\n", what, tether_strerror(rc), strerror(errno));
    return 1;
}

/* Prints "listening on HOST:PORT[ tls]" with the real port (the flag may say port 0). */
static void announce(const char *addr, uint16_t port, const char *suffix) {
    const char *colon = strrchr(addr, ':');
    int host_len = colon ? (int)(colon - addr) : (int)strlen(addr);
    printf("listening on %.*s:%u%s\n", host_len, addr, (unsigned)port, suffix);
}

int main(int argc, char **argv) {
    const char *listen = "127.0.0.1:7701";
    const char *tls_listen = NULL;
    tether_config_t cfg;
    tether_config_default(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(flag, "--listen") == 0 && value) {
            listen = value;
        } else if (strcmp(flag, "--heartbeat-ms") == 0) {
            cfg.heartbeat_ms = parse_u32(flag, value);
        } else if (strcmp(flag, "--min-heartbeat-ms") == 0) {
            cfg.min_heartbeat_ms = parse_u32(flag, value);
        } else if (strcmp(flag, "--miss") == 0) {
            cfg.miss = parse_u32(flag, value);
        } else if (strcmp(flag, "--handshake-timeout-ms") == 0) {
            cfg.handshake_timeout_ms = parse_u32(flag, value);
        } else if (strcmp(flag, "--linger-ms") == 0) {
            cfg.linger_ms = parse_u32(flag, value);
        } else if (strcmp(flag, "--tick-ms") == 0) {
            cfg.tick_ms = parse_u32(flag, value);
        } else if (strcmp(flag, "--tls-listen") == 0 && value) {
            tls_listen = value;
        } else if (strcmp(flag, "--tls-cert") == 0 && value) {
            cfg.tls_cert_file = value;
        } else if (strcmp(flag, "--tls-key") == 0 && value) {
            cfg.tls_key_file = value;
        } else if (strcmp(flag, "--tls-client-ca") == 0 && value) {
            cfg.tls_client_ca_file = value;
        } else {
            fprintf(stderr, "echo_upper: unknown flag %s\n", flag);
            return 2;
        }
        i++;
    }

    struct service svc = {0};
    tether_callbacks_t callbacks = {
        .on_open = on_open,
        .on_message = on_message,
        .on_close = on_close,
    };
    tether_t *t = NULL;
    int rc = tether_new(&cfg, &callbacks, &svc, &t);
    if (rc != TETHER_OK) {
        return die("tether_new", rc);
    }
    uint16_t port = 0;
    rc = tether_listen(t, listen, &port);
    if (rc != TETHER_OK) {
        tether_free(t);
        return die(listen, rc);
    }
    uint16_t tls_port = 0;
    if (tls_listen) {
        rc = tether_listen_tls(t, tls_listen, &tls_port);
        if (rc != TETHER_OK) {
            tether_free(t);
            return die(tls_listen, rc);
        }
    }

    /* The program's own event sources: a self-pipe for signals and a timer. */
    int wake[2];
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("pipe2");
        tether_free(t);
        return 1;
    }
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    struct itimerspec every_second = {{1, 0}, {1, 0}};
    if (timer < 0 || timerfd_settime(timer, 0, &every_second, NULL) != 0) {
        perror("timerfd");
        tether_free(t);
        return 1;
    }
    g_tether = t;
    g_wake_fd = wake[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    announce(listen, port, "");
    if (tls_listen) {
        announce(tls_listen, tls_port, " tls");
    }
    fflush(stdout);

    unsigned long long ticks = 0;
    int status = 0;
    while (!tether_is_stopped(t)) {
        struct pollfd fds[3] = {
            {.fd = tether_fd(t), .events = POLLIN},
            {.fd = timer, .events = POLLIN},
            {.fd = wake[0], .events = POLLIN},
        };
        int n = poll(fds, 3, tether_timeout_ms(t));
        if (n < 0 && errno != EINTR) {
            perror("poll");
            status = 1;
            break;
        }
        if (n > 0 && (fds[1].revents & POLLIN)) {
            uint64_t expirations = 0;
            if (read(timer, &expirations, sizeof expirations) == (ssize_t)sizeof expirations) {
                ticks += expirations;
                fprintf(stderr, "tick %llu: %zu connections, %lu opened, %lu messages\n", ticks,
                        tether_connection_count(t), svc.opened, svc.messages);
            }
        }
        if (n > 0 && (fds[2].revents & POLLIN)) {
            char drain[16];
            while (read(wake[0], drain, sizeof drain) > 0) {
            }
            fprintf(stderr, "stop requested: closing %zu connections\n",
                    tether_connection_count(t));
        }
        /* Always step: tether's fd may be ready, or one of its deadlines due. */
        rc = tether_step(t);
        if (rc != TETHER_OK) {
            status = die("tether_step", rc);
            break;
        }
    }

    /* Unhook the handler before the handle goes away. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    g_tether = NULL;
    g_wake_fd = -1;
    fprintf(stderr, "stopped after %llu ticks: %lu connections opened, %lu messages\n", ticks,
            svc.opened, svc.messages);
    tether_free(t);
    close(timer);
    close(wake[0]);
    close(wake[1]);
    return status;
}
