/*
 * session_server.c -- the epoll model in C: one thread, non-blocking sockets, edge-triggered
 * epoll, every event drained. The course notes' echo-server exercise written as a real program
 * that passes the conformance suite, through the wire protocol (docs/wire-protocol.md).
 *
 * The model
 * ---------
 * One loop, one epoll instance, and everything the program touches is a descriptor in it:
 * the listener, every session's socket, and the control channel to the suite (stdin for
 * commands, stdout for events). Nothing ever blocks: every socket is O_NONBLOCK, and the only
 * place the thread sleeps is epoll_wait().
 *
 * Some facts about the syscalls
 * -----------------------------
 * - epoll_create1() makes a kernel object with an interest list (epoll_ctl ADD/MOD/DEL) and a
 *   ready list; epoll_wait() returns only the ready descriptors, so a turn costs per ready
 *   socket, not per watched socket (select copies the whole fd_set in on every call).
 * - EPOLLET (edge-triggered) reports a descriptor once, when it *becomes* ready. So every
 *   event must be drained: recv() until EAGAIN or 0, accept4() until EAGAIN, send() until the
 *   queue is empty or EAGAIN. Stop early and the rest waits for an edge that never comes --
 *   the classic edge-triggered bug (S3, S10).
 * - A non-blocking send() takes what fits in the kernel's send buffer and returns how much
 *   that was: a *partial send*. The rest stays in our queue, first in line (S4). When send()
 *   says EAGAIN we arm EPOLLOUT and wait for the edge; we disarm it once the queue is empty,
 *   so an idle socket never wakes the loop (S6).
 * - recv() returning 0 is the peer's FIN: it will send nothing more, but it may still read
 *   (a half-close). So the FIN starts a graceful close -- flush what was accepted, then
 *   shutdown(SHUT_WR) sends our FIN -- never an immediate close (S5).
 * - close() of a socket with SO_LINGER {on, 0} sends an RST and drops what is unsent: the
 *   abort, for a flush that missed its linger deadline (S9) or a session whose application
 *   callback failed (S12).
 * - The kernel reuses the lowest free descriptor number at once. A session id is therefore
 *   never the fd: it comes from a 64-bit counter that never repeats (S1), and epoll events
 *   carry the id, so an event or a command for a session already released finds nothing (S8).
 * - accept4() failing with EMFILE/ENFILE (out of descriptors) leaves the connection in the
 *   backlog, and the listener stays readable with no new edge to come: back off and retry on
 *   a timer, neither at once (a spin, S6) nor never (a stranded backlog, S10).
 *
 * What this means for this program
 * --------------------------------
 * The application (the suite) lives in another process. Its callbacks are *events* this
 * program writes to stdout (CONNECT, RECV, RELEASE); its calls are *commands* it reads from
 * stdin (SEND, DISCONNECT, STOP), each answered with a result. Both pipes are descriptors in
 * the same epoll set, non-blocking like the sockets: a command is parsed only once its frame
 * is whole, and events are appended to an output buffer that is flushed when stdout is
 * writable -- the same partial-write discipline as a session's send queue. So a suite that is
 * slow to read never blocks the loop, and a peer never waits for the suite.
 *
 * Because the loop is one thread, a session's events are written in order and never overlap
 * (S2), and a command is handled between two events, never in the middle of one (S13 holds
 * by construction: the suite's callback may send while we are already serving other peers).
 * `workers` in START is accepted and ignored: one loop serves every session.
 *
 * One rule has no in-process counterpart, the FIN rule (S5). In-process, the loop calls
 * on_recv and reads on only once it returned, so a reply sent from inside it is queued before
 * the peer's FIN is even seen. Here the suite runs on_recv later, in its own process, and
 * answers each CONNECT and RECV with RETURNED once its callback returned. So each session
 * counts its events not yet answered; a FIN seen while that count is not zero only marks the
 * session, and the close begins when the last RETURNED arrives.
 *
 * A session is LIVE from CONNECT until it starts closing (DISCONNECT, the peer's FIN or RST,
 * a failed callback, STOP). A CLOSING session refuses SEND, flushes its queue within
 * linger_ms, then FIN (or RST at the deadline), close(), RELEASE, and its id is gone.
 *
 * Clauses this file works hardest for: S1 (the id counter), S3/S10 (drain to EAGAIN), S4 (the
 * send queue's partial-send accounting), S5 (FIN starts a flush, not a close), S7 (the
 * limit), S9 (linger), S11 (STOP releases everyone, then only fds 0/1/2 stay open).
 *
 * Sources: epoll(7) ("Level-triggered and edge-triggered", "Possible pitfalls"),
 * epoll_ctl(2), accept4(2), send(2), recv(2), shutdown(2), socket(7) (SO_LINGER), tcp(7) --
 * Linux man-pages. impls/epoll_et.py is the same model in Python, with N loops.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o session_server session_server.c
 * (impls/c/__init__.py does this for the suite). C11, libc and Linux only.
 */

#define _GNU_SOURCE /* accept4, SOCK_NONBLOCK */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- constants, each with its reason */

#define WIRE_VERSION 1
/* epoll_wait returns at most this many events per call; more simply wait for the next call. */
#define MAX_EVENTS 256
/* One recv() takes at most this much; it becomes one RECV frame. */
#define RECV_SIZE (64 * 1024)
/* Fairness: a peer that sends as fast as we read could keep one drain going forever. After
 * this many recv() calls the socket waits for the next turn -- remembered in the
 * more_to_read list, since no new edge will announce it. */
#define READS_PER_TURN 16
/* The same for a connect storm against the sessions already open (S10). */
#define ACCEPTS_PER_TURN 256
/* accept4() failed with EMFILE/ENFILE: try again after this long (the Python models' ACCEPT_RETRY). */
#define ACCEPT_RETRY_MS 100
/* Events the suite has not read yet. Past this, the loop stops reading peers (they wait in
 * their kernel buffers, and TCP slows them down) until stdout drains: the same back-pressure
 * an in-process callback gives by taking its time. */
#define OUT_HIGH_WATER (4u << 20)
/* Frames larger than this are garbage (the wire protocol's own bound). */
#define MAX_FRAME (1u << 30)

/* epoll_event.data carries a session id, never a pointer or an fd (S8). These tokens name
 * the other descriptors; session ids count up from 1 and never reach them. */
#define TOKEN_STDIN UINT64_MAX
#define TOKEN_STDOUT (UINT64_MAX - 1)
#define TOKEN_LISTENER (UINT64_MAX - 2)

/* Wire frame types (docs/wire-protocol.md). Program -> suite: */
enum { HELLO = 0x01, STARTED = 0x02, RESULT = 0x03, FAILED = 0x04,
       EV_CONNECT = 0x10, EV_RECV = 0x11, EV_RELEASE = 0x12 };
/* Suite -> program: */
enum { CMD_START = 0x81, CMD_SEND = 0x82, CMD_DISCONNECT = 0x83, CMD_STOP = 0x84,
       CMD_CALLBACK_FAILED = 0x85, CMD_RETURNED = 0x86 };

/* ---- byte buffers: a queue with a read offset, the shape of every buffer here */

typedef struct {
    unsigned char *data;
    size_t head; /* bytes before head are consumed (sent, parsed) */
    size_t len;  /* bytes after len are free */
    size_t cap;
} Buffer;

static size_t buf_pending(const Buffer *b) { return b->len - b->head; }

static void die(const char *fmt, ...);

static void buf_append(Buffer *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        if (b->head) { /* slide the unconsumed bytes to the front before growing */
            memmove(b->data, b->data + b->head, buf_pending(b));
            b->len -= b->head;
            b->head = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->len + n) cap *= 2;
            unsigned char *grown = realloc(b->data, cap);
            if (!grown) die("out of memory for a %zu-byte buffer", cap);
            b->data = grown;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_consume(Buffer *b, size_t n) {
    b->head += n;
    if (b->head == b->len) b->head = b->len = 0; /* empty: start over at the front */
}

/* ---- big-endian fields (network byte order), written out so no header is needed */

static void put_u16(unsigned char *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (v >> (24 - 8 * i)) & 0xff;
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (v >> (56 - 8 * i)) & 0xff;
}
static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get_u64(const unsigned char *p) {
    return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

/* ---- the session record */

typedef enum { LIVE, CLOSING } State;

typedef struct {
    uint64_t id; /* from the counter, never the fd (S1) */
    int fd;
    State state;
    bool abort;        /* CLOSING: reset instead of flushing (RST seen, callback failed) */
    bool out_armed;    /* EPOLLOUT is in the interest list */
    bool fin_seen;     /* recv() returned 0: the peer sends nothing more */
    uint64_t unreturned; /* CONNECT/RECV written whose callback has not returned (RETURNED) */
    int64_t deadline;  /* CLOSING: monotonic ms when linger runs out */
    Buffer queue;      /* accepted by SEND, not yet taken by send(): the send queue */
} Session;

typedef struct {
    uint64_t *ids;
    size_t n, cap;
} IdList;

/* ---- the program's state: one loop owns all of it, so no locks */

static struct {
    int epfd;
    int listener; /* -1 when not listening */
    uint64_t next_id;
    uint64_t send_queue_limit;
    int64_t linger_ms;
    bool started;
    bool stopping;       /* STOP arrived: its answer waits until every session is released */
    uint32_t stop_tag;
    bool accept_pending; /* the listener has connections we have not accepted yet */
    int64_t accept_resume; /* EMFILE back-off: monotonic ms before which we do not accept */
    /* Live and closing sessions, sorted by id. Ids only grow, so a new session is always
     * appended at the end and the array stays sorted: lookup is a binary search. */
    Session **sessions;
    size_t n_sessions, cap_sessions;
    size_t n_closing;
    /* Ids whose drain was cut short (READS_PER_TURN): served next turn. Two lists, swapped
     * each turn, because serving one may add to the other. */
    IdList more_to_read, reading;
    Buffer in;  /* stdin: bytes of commands not yet whole */
    Buffer out; /* stdout: frames the suite has not taken yet */
    bool out_armed;
    bool out_pollable; /* stdout is a pipe or socket epoll can watch (the suite's is a pipe) */
} P;

static unsigned char recv_buf[RECV_SIZE];

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("session_server: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* never jumps with the wall clock */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_nonblocking(int fd, bool on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) < 0)
        die("fcntl(%d): %s", fd, strerror(errno));
}

static void watch(int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev = {.events = events, .data.u64 = token};
    if (epoll_ctl(P.epfd, op, fd, &ev) < 0) die("epoll_ctl(fd %d): %s", fd, strerror(errno));
}

/* Readable interest of a session: edge-triggered, and the peer's half-close as a flag. */
#define SESSION_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)

/* ---- the session table */

/* Where `id` is, or would be, in the sorted array: a binary search. */
static size_t slot_of(uint64_t id) {
    size_t lo = 0, hi = P.n_sessions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (P.sessions[mid]->id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The session with this id, or NULL: unknown, or released (S8 -- the id is never reused,
 * so a stale id finds nothing, never a newer session). */
static Session *find(uint64_t id) {
    size_t i = slot_of(id);
    return i < P.n_sessions && P.sessions[i]->id == id ? P.sessions[i] : NULL;
}

static void table_add(Session *s) {
    if (P.n_sessions == P.cap_sessions) {
        P.cap_sessions = P.cap_sessions ? 2 * P.cap_sessions : 64;
        P.sessions = realloc(P.sessions, P.cap_sessions * sizeof *P.sessions);
        if (!P.sessions) die("out of memory for the session table");
    }
    P.sessions[P.n_sessions++] = s; /* the largest id so far: the array stays sorted */
}

static void table_remove(uint64_t id) {
    size_t i = slot_of(id);
    if (i < P.n_sessions && P.sessions[i]->id == id) { /* close the gap: still sorted */
        memmove(&P.sessions[i], &P.sessions[i + 1], (P.n_sessions - i - 1) * sizeof *P.sessions);
        P.n_sessions--;
    }
}

/* ---- the control channel, out: every frame is appended whole, flushed when stdout can take it */

static void flush_out(void) {
    while (buf_pending(&P.out)) {
        ssize_t n = write(STDOUT_FILENO, P.out.data + P.out.head, buf_pending(&P.out));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            /* The suite has not read yet: wait for its edge instead of retrying (S6). */
            if (!P.out_armed) {
                P.out_armed = true;
                watch(EPOLL_CTL_MOD, STDOUT_FILENO, EPOLLOUT | EPOLLET, TOKEN_STDOUT);
            }
            return;
        }
        if (n < 0) exit(0); /* EPIPE: the suite is gone, so is our reason to run */
        buf_consume(&P.out, (size_t)n); /* a partial write: the rest stays, first in line */
    }
    if (P.out_armed) {
        P.out_armed = false;
        watch(EPOLL_CTL_MOD, STDOUT_FILENO, EPOLLET, TOKEN_STDOUT);
    }
}

/* Frame = u32 length (of type + body), u8 type, `head` (fixed fields), `rest` (variable). */
static void emit(uint8_t type, const unsigned char *head, size_t head_len, const void *rest,
                 size_t rest_len) {
    unsigned char prefix[5];
    put_u32(prefix, (uint32_t)(1 + head_len + rest_len));
    prefix[4] = type;
    buf_append(&P.out, prefix, sizeof prefix);
    buf_append(&P.out, head, head_len);
    if (rest_len) buf_append(&P.out, rest, rest_len);
}

static void emit_result(uint32_t tag, bool value) {
    unsigned char f[5];
    put_u32(f, tag);
    f[4] = value;
    emit(RESULT, f, sizeof f, NULL, 0);
}

static void emit_failed(uint32_t tag, const char *message) {
    unsigned char f[4];
    put_u32(f, tag);
    emit(FAILED, f, sizeof f, message, strlen(message));
}

static void emit_id(uint8_t type, uint64_t id, const void *rest, size_t rest_len) {
    unsigned char f[8];
    put_u64(f, id);
    emit(type, f, sizeof f, rest, rest_len);
}

/* ---- release: the only place a session's socket is closed and its id retired */

static void release(Session *s) {
    epoll_ctl(P.epfd, EPOLL_CTL_DEL, s->fd, NULL);
    if (s->abort) {
        /* SO_LINGER {on, 0}: close() sends RST and drops the unsent queue -- the abort. */
        struct linger hard = {.l_onoff = 1, .l_linger = 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    } else {
        /* Our FIN, after every flushed byte. (A peer still sending may get an RST from the
         * close() below instead: close() with unread bytes resets. S9 allows it.) */
        shutdown(s->fd, SHUT_WR);
    }
    close(s->fd);
    uint64_t id = s->id;
    table_remove(id); /* from here on, SEND and DISCONNECT of this id miss (S8) */
    if (s->state == CLOSING) P.n_closing--;
    free(s->queue.data);
    free(s);
    emit_id(EV_RELEASE, id, NULL, 0); /* after the close, as the contract says (S9) */
}

/* Begin closing: refuse SEND from now on, flush within linger, then finish_closing() does the
 * rest. `abort` skips the flush (a reset connection can take no byte; a failed callback). */
static void begin_close(Session *s, bool abort) {
    if (s->state == LIVE) {
        s->state = CLOSING;
        s->deadline = now_ms() + P.linger_ms;
        P.n_closing++;
    }
    if (abort) s->abort = true; /* also ends a graceful close under way (S12) */
}

/* ---- writable: send until the queue is empty or EAGAIN */

static void flush_session(Session *s) {
    if (s->abort) return; /* an abort ends the flush for good (S9): not one more byte */
    while (buf_pending(&s->queue)) {
        ssize_t n = send(s->fd, s->queue.data + s->queue.head, buf_pending(&s->queue),
                         MSG_NOSIGNAL); /* a reset peer gives EPIPE, not a SIGPIPE that kills us */
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            if (!s->out_armed) { /* only now will an EPOLLOUT edge come (epoll(7)) */
                s->out_armed = true;
                watch(EPOLL_CTL_MOD, s->fd, SESSION_EVENTS | EPOLLOUT, s->id);
            }
            return;
        }
        if (n < 0) { /* ECONNRESET, EPIPE: the connection is gone, and the queue with it */
            begin_close(s, true);
            return;
        }
        buf_consume(&s->queue, (size_t)n); /* S4: a partial send leaves the rest queued */
    }
    if (s->out_armed) { /* nothing left: an armed EPOLLOUT would only wake us for nothing */
        s->out_armed = false;
        watch(EPOLL_CTL_MOD, s->fd, SESSION_EVENTS, s->id);
    }
}

/* ---- readable: recv until EAGAIN or 0, at most READS_PER_TURN times */

static void remember_to_read(uint64_t id) {
    IdList *l = &P.more_to_read;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->ids = realloc(l->ids, l->cap * sizeof *l->ids);
        if (!l->ids) die("out of memory for the read list");
    }
    l->ids[l->n++] = id;
}

static void on_readable(Session *s) {
    if (s->abort) return; /* about to be reset: nothing it reads could be delivered */
    if (buf_pending(&P.out) > OUT_HIGH_WATER) {
        remember_to_read(s->id); /* the suite is behind: leave the bytes in the kernel */
        return;
    }
    for (int i = 0; i < READS_PER_TURN; i++) {
        ssize_t n = recv(s->fd, recv_buf, sizeof recv_buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return; /* drained: the next byte is a new edge */
        if (n < 0) { /* ECONNRESET: the peer's RST ends this session only (S12) */
            begin_close(s, true);
            return;
        }
        if (n == 0) { /* S5: the zero-byte recv -- the peer's FIN. Flush, then close. */
            s->fin_seen = true;
            if (s->unreturned == 0) begin_close(s, false);
            /* else the suite is still inside (or yet to run) on_recv for the data before
             * the FIN, and a reply sent from there must be accepted (S5): the close begins
             * when the last RETURNED arrives (cmd_returned). Later events of this socket
             * still come here: recv() says 0 again, or ECONNRESET once the peer resets,
             * which must end a flush still under way (S12). */
            return;
        }
        emit_id(EV_RECV, s->id, recv_buf, (size_t)n); /* a copy: recv_buf is reused (S3) */
        s->unreturned++;
    }
    remember_to_read(s->id); /* cut short for fairness; no edge will remind us */
}

/* ---- accept: until EAGAIN, and back off on EMFILE */

static void on_acceptable(void) {
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        struct sockaddr_storage addr;
        socklen_t addr_len = sizeof addr;
        /* SOCK_CLOEXEC: no descriptor of ours outlives an exec; SOCK_NONBLOCK: no race
         * between accept and fcntl. */
        int fd = accept4(P.listener, (struct sockaddr *)&addr, &addr_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN) {
                P.accept_pending = false; /* drained: the next connect is a new edge (S10) */
                return;
            }
            if (errno == EMFILE || errno == ENFILE) {
                /* The connection is still in the backlog and no new edge will announce it:
                 * stay pending, retry after a back-off (S6 no spin, S10 no stranding). */
                P.accept_resume = now_ms() + ACCEPT_RETRY_MS;
                return;
            }
            continue; /* ECONNABORTED and friends: that one connection is gone, go on */
        }
        char host[INET6_ADDRSTRLEN] = "";
        uint16_t port = 0;
        if (addr.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&addr;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (addr.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        }
        Session *s = calloc(1, sizeof *s);
        if (!s) die("out of memory for a session");
        s->id = P.next_id++; /* S1: a counter, never the fd the kernel will hand out again */
        s->fd = fd;
        s->state = LIVE;
        table_add(s);
        unsigned char head[10];
        put_u64(head, s->id);
        put_u16(head + 8, port);
        emit(EV_CONNECT, head, sizeof head, host, strlen(host));
        s->unreturned = 1; /* on_connect has not run yet */
        /* Registering a socket that already holds data reports it at once, so nothing that
         * arrived before this line is missed; and CONNECT is already written before any RECV. */
        watch(EPOLL_CTL_ADD, fd, SESSION_EVENTS, s->id);
    }
    /* Cut short (ACCEPTS_PER_TURN): accept_pending stays set, the loop comes back. */
}

/* ---- the commands */

static void stop_listening(void) {
    if (P.listener >= 0) {
        epoll_ctl(P.epfd, EPOLL_CTL_DEL, P.listener, NULL);
        close(P.listener);
        P.listener = -1;
        P.accept_pending = false;
    }
}

static void cmd_start(const unsigned char *b, size_t n) {
    if (n < 4 + 2 + 8 + 4 + 4 + 2) die("START frame too short (%zu bytes)", n);
    uint32_t tag = get_u32(b);
    uint16_t version = get_u16(b + 4);
    if (version != WIRE_VERSION) {
        char msg[128];
        snprintf(msg, sizeof msg, "this program speaks wire protocol version %d, "
                 "the suite sent START for version %u", WIRE_VERSION, version);
        emit_failed(tag, msg);
        set_nonblocking(STDOUT_FILENO, false);
        flush_out();
        exit(1);
    }
    if (P.started) {
        emit_failed(tag, "START came twice: one program serves one server");
        return;
    }
    P.send_queue_limit = get_u64(b + 6);
    /* b + 14: workers -- one loop serves every session here, so it is not used. */
    P.linger_ms = get_u32(b + 18);
    uint16_t port = get_u16(b + 22);
    char host[256];
    size_t host_len = n - 24 < sizeof host - 1 ? n - 24 : sizeof host - 1;
    memcpy(host, b + 24, host_len);
    host[host_len] = '\0';

    struct sockaddr_storage addr = {0};
    socklen_t addr_len;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        addr_len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        addr_len = sizeof *a6;
    } else {
        emit_failed(tag, "START: the host is not a numeric IPv4 or IPv6 address");
        return;
    }
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    char msg[400];
    if (fd < 0) {
        snprintf(msg, sizeof msg, "socket(): %s", strerror(errno));
        emit_failed(tag, msg);
        return;
    }
    /* SO_REUSEADDR: a port in TIME_WAIT from an earlier run may be bound again. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* SOMAXCONN: the kernel caps it at net.core.somaxconn (4096): bursts wait there (S10). */
    if (bind(fd, (struct sockaddr *)&addr, addr_len) < 0 || listen(fd, SOMAXCONN) < 0) {
        snprintf(msg, sizeof msg, "bind/listen %s:%u: %s", host, port, strerror(errno));
        close(fd);
        emit_failed(tag, msg);
        return;
    }
    getsockname(fd, (struct sockaddr *)&addr, &addr_len);
    P.listener = fd;
    P.started = true;
    watch(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLET, TOKEN_LISTENER);
    unsigned char f[6];
    put_u32(f, tag);
    put_u16(f + 4, ntohs(addr.ss_family == AF_INET ? a4->sin_port : a6->sin6_port));
    emit(STARTED, f, sizeof f, NULL, 0);
}

static bool admit_send(Session *s, const unsigned char *data, size_t n) {
    if (!s || s->state != LIVE) return false; /* S8: unknown, closing or released id */
    if (n == 0) return true; /* S4: b"" on a live session is accepted, and queues nothing */
    /* S7: judged on what is queued *plus* this call; exactly the limit is still accepted. */
    if (buf_pending(&s->queue) + n > P.send_queue_limit) return false;
    buf_append(&s->queue, data, n);
    return true;
}

static void cmd_send(const unsigned char *b, size_t n) {
    if (n < 12) die("SEND frame too short (%zu bytes)", n);
    Session *s = find(get_u64(b + 4));
    bool ok = admit_send(s, b + 12, n - 12);
    emit_result(get_u32(b), ok); /* the result goes out before anything the send causes */
    if (ok && !s->out_armed) flush_session(s); /* armed: EPOLLOUT will tell us when */
}

static void cmd_disconnect(const unsigned char *b, size_t n) {
    if (n < 12) die("DISCONNECT frame too short (%zu bytes)", n);
    Session *s = find(get_u64(b + 4));
    bool ok = s && s->state == LIVE; /* S9: True once; a second one, or a closing id: False */
    emit_result(get_u32(b), ok); /* before the RELEASE it leads to */
    if (ok) begin_close(s, false);
}

static void cmd_stop(const unsigned char *b, size_t n) {
    if (n < 4) die("STOP frame too short (%zu bytes)", n);
    uint32_t tag = get_u32(b);
    if (P.stopping) { /* idempotent: a second STOP while the first runs is answered at once */
        emit_result(tag, true);
        return;
    }
    P.stopping = true;
    P.stop_tag = tag;
    stop_listening(); /* no CONNECT after STOP (S11) */
    for (size_t i = 0; i < P.n_sessions; i++) begin_close(P.sessions[i], false);
    /* The answer is written by the loop once every session is released. */
}

static void cmd_callback_failed(const unsigned char *b, size_t n) {
    if (n < 8) die("CALLBACK_FAILED frame too short (%zu bytes)", n);
    Session *s = find(get_u64(b));
    if (s) begin_close(s, true); /* S12: abort that session only; an unknown id is ignored */
}

/* The suite's callback for this id's oldest outstanding event returned. In-process, the
 * loop calls on_recv and learns it returned before it reads on; over the wire the event is
 * fire-and-forget, so this frame tells us. Only a FIN waits for it. */
static void cmd_returned(const unsigned char *b, size_t n) {
    if (n < 8) die("RETURNED frame too short (%zu bytes)", n);
    Session *s = find(get_u64(b));
    if (!s || s->unreturned == 0) return; /* released meanwhile: nothing waits for it */
    if (--s->unreturned == 0 && s->fin_seen) begin_close(s, false);
}

/* Parse every whole frame in the stdin buffer; a partial one waits for more bytes. */
static void handle_commands(void) {
    while (buf_pending(&P.in) >= 5) {
        const unsigned char *f = P.in.data + P.in.head;
        uint32_t len = get_u32(f);
        if (len < 1 || len > MAX_FRAME) die("garbage on stdin: a frame of length %u", len);
        if (buf_pending(&P.in) < 4 + (size_t)len) return;
        const unsigned char *body = f + 5;
        size_t n = len - 1;
        switch (f[4]) {
        case CMD_START: cmd_start(body, n); break;
        case CMD_SEND: cmd_send(body, n); break;
        case CMD_DISCONNECT: cmd_disconnect(body, n); break;
        case CMD_STOP: cmd_stop(body, n); break;
        case CMD_CALLBACK_FAILED: cmd_callback_failed(body, n); break;
        case CMD_RETURNED: cmd_returned(body, n); break;
        default: die("garbage on stdin: unknown frame type 0x%02x", f[4]);
        }
        buf_consume(&P.in, 4 + (size_t)len);
    }
}

static bool read_commands(void) { /* false at EOF */
    unsigned char chunk[64 * 1024];
    for (;;) { /* drained to EAGAIN: stdin is edge-triggered like everything else */
        ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return true;
        if (n <= 0) return false; /* EOF (or an error): the suite is gone */
        buf_append(&P.in, chunk, (size_t)n);
        handle_commands();
    }
}

/* ---- release what is closed */

/* Every CLOSING session whose queue is flushed, or whose linger ran out, or that aborts. */
static void finish_closing(void) {
    if (P.n_closing == 0) return;
    int64_t now = now_ms();
    for (size_t i = 0; i < P.n_sessions;) {
        Session *s = P.sessions[i];
        if (s->state == CLOSING && !s->abort && buf_pending(&s->queue) && now >= s->deadline)
            s->abort = true; /* S9: linger is over, the flush is abandoned */
        if (s->state == CLOSING && (s->abort || !buf_pending(&s->queue)))
            release(s); /* the array shifted down: the same index is the next session */
        else
            i++;
    }
}

/* epoll_wait's timeout: the nearest linger deadline or accept retry, else forever (-1). */
static int next_timeout(void) {
    if (P.more_to_read.n && buf_pending(&P.out) <= OUT_HIGH_WATER) return 0;
    int64_t soonest = INT64_MAX;
    if (P.n_closing)
        for (size_t i = 0; i < P.n_sessions; i++)
            if (P.sessions[i]->state == CLOSING && P.sessions[i]->deadline < soonest)
                soonest = P.sessions[i]->deadline;
    if (P.accept_pending && P.accept_resume < soonest) soonest = P.accept_resume;
    if (soonest == INT64_MAX) return -1;
    int64_t wait = soonest - now_ms();
    return wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
}

/* ---- the loop */

static void run(void) {
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        flush_out();
        int n = epoll_wait(P.epfd, events, MAX_EVENTS, next_timeout());
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            uint64_t token = events[i].data.u64;
            uint32_t mask = events[i].events;
            if (token == TOKEN_STDIN) {
                if (!read_commands()) exit(0); /* EOF: the kernel closes every socket */
            } else if (token == TOKEN_STDOUT) {
                flush_out();
            } else if (token == TOKEN_LISTENER) {
                P.accept_pending = true;
            } else {
                Session *s = find(token); /* an event of a session released this turn: NULL */
                if (!s) continue;
                if (mask & EPOLLOUT) flush_session(s);
                if (mask & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(s);
            }
        }
        if (P.accept_pending && P.listener >= 0 && now_ms() >= P.accept_resume)
            on_acceptable();
        if (buf_pending(&P.out) <= OUT_HIGH_WATER) { /* else they wait for stdout's edge */
            IdList swap = P.reading;
            P.reading = P.more_to_read;
            P.more_to_read = swap;
            P.more_to_read.n = 0;
            for (size_t i = 0; i < P.reading.n; i++) {
                Session *s = find(P.reading.ids[i]); /* released meanwhile: NULL */
                if (s) on_readable(s);
            }
        }
        finish_closing();
        if (P.stopping && P.n_sessions == 0) {
            emit_result(P.stop_tag, true); /* STOP: every RELEASE is written before this */
            return;
        }
    }
}

/* After STOP: every socket and the epoll are closed (the suite reads /proc for S11: only fds
 * 0, 1 and 2 may be open), and commands are answered with plain blocking reads until EOF. */
static void stopped(void) {
    /* The epoll goes first: STOP's answer is still in the output buffer, and the suite may
     * look at /proc the moment it reads it. */
    close(P.epfd);
    P.out_armed = false; /* that interest went with the epoll */
    set_nonblocking(STDOUT_FILENO, false);
    flush_out();
    set_nonblocking(STDIN_FILENO, false);
    for (;;) {
        handle_commands(); /* SEND/DISCONNECT miss (no session is left), STOP is answered */
        flush_out();
        unsigned char chunk[64 * 1024];
        ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) exit(0);
        buf_append(&P.in, chunk, (size_t)n);
    }
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a suite that went away is an EPIPE from write(), not a kill */
    P.listener = -1;
    P.next_id = 1;
    /* HELLO first, at once, before reading anything (blocking: the suite waits for it). */
    static const char name[] = "impls/c/session_server.c (edge-triggered epoll, one loop)";
    unsigned char v[2];
    put_u16(v, WIRE_VERSION);
    emit(HELLO, v, sizeof v, name, sizeof name - 1);
    flush_out();

    P.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (P.epfd < 0) die("epoll_create1: %s", strerror(errno));
    set_nonblocking(STDIN_FILENO, true);
    watch(EPOLL_CTL_ADD, STDIN_FILENO, EPOLLIN | EPOLLET, TOKEN_STDIN);
    /* stdout joins the set with no interest; flush_out() arms EPOLLOUT only after EAGAIN.
     * A regular file cannot be watched (EPERM), but it never says EAGAIN either: leave it
     * blocking. */
    struct epoll_event ev = {.events = EPOLLET, .data.u64 = TOKEN_STDOUT};
    P.out_pollable = epoll_ctl(P.epfd, EPOLL_CTL_ADD, STDOUT_FILENO, &ev) == 0;
    if (P.out_pollable) set_nonblocking(STDOUT_FILENO, true);
    run();
    stopped();
    return 0;
}
