/*
 * floorserver: the cheapest possible server of the pmdaroot protocol, for
 * measuring the floor under any real one. It greets each client with INFO
 * and answers every container request at once with a fixed reply (pid 1,
 * name "floor"), doing no lookup at all: what the load driver measures
 * against it is the cost of the socket round trip, the client library and
 * the scheduler on this machine.
 *
 *   floorserver SOCKET
 *
 * Single-threaded, epoll. Runs until killed; removes SOCKET first.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HDR	16
#define MAXPDU	(HDR + 8 + 4096)

static void
put(char *b, int off, int32_t v)
{
    memcpy(b + off, &v, sizeof(v));
}

static int32_t
get(const char *b, int off)
{
    int32_t v;
    memcpy(&v, b + off, sizeof(v));
    return v;
}

/* serve reads one request from fd and answers it; -1 closes the client. */
static int
serve(int fd)
{
    char in[MAXPDU], out[HDR + 8 + 8];
    ssize_t n = recv(fd, in, sizeof(in), 0);
    int32_t type, len;
    const char name[] = "floor";

    if (n < HDR)
	return -1;
    type = get(in, 0);
    len = get(in, 4);
    if (len != n || type < 0x9001 || type > 0x9005 || (type & 1) == 0)
	return -1;	/* one whole container request per recv, or nothing */
    memset(out, 0, sizeof(out));
    put(out, 0, type + 1);
    put(out, 8, 0);
    put(out, 12, 2);
    put(out, 16, 1);
    if (type == 0x9003) {	/* PROCESSID: no name */
	put(out, 4, HDR + 8);
	return send(fd, out, HDR + 8, 0) == HDR + 8 ? 0 : -1;
    }
    put(out, 4, HDR + 8 + (int)strlen(name));
    put(out, 20, (int)strlen(name));
    memcpy(out + HDR + 8, name, strlen(name));
    return send(fd, out, HDR + 8 + strlen(name), 0) == (ssize_t)(HDR + 8 + strlen(name)) ? 0 : -1;
}

int
main(int argc, char **argv)
{
    struct sockaddr_un sa;
    struct epoll_event ev, evs[64];
    int ls, ep, i, n, fd;
    char info[HDR + 8];

    if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
	fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
	return 2;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, argv[1]);
    unlink(argv[1]);
    if ((ls = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 128) < 0) {
	perror("floorserver: listen");
	return 1;
    }
    memset(info, 0, sizeof(info));
    put(info, 0, 0x9000);
    put(info, 4, HDR + 8);
    put(info, 12, 2);
    put(info, 16, 7);

    ep = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.fd = ls;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
	n = epoll_wait(ep, evs, 64, -1);
	if (n < 0 && errno != EINTR)
	    return 1;
	for (i = 0; i < n; i++) {
	    fd = evs[i].data.fd;
	    if (fd == ls) {
		if ((fd = accept(ls, NULL, NULL)) < 0)
		    continue;
		if (send(fd, info, sizeof(info), 0) != sizeof(info)) {
		    close(fd);
		    continue;
		}
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	    } else if (serve(fd) < 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
	    }
	}
    }
}
