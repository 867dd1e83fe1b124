/*
 * rootclient: drives a root socket through PCP's own client library
 * (libpcp_pmda), the code real PCP deployments run, so the integration
 * tests see exactly what pmcd, pmdaproc and pmdalinux see.
 *
 *   rootclient SOCKET connect
 *   rootclient SOCKET pid|hostname|cgroup NAME...
 *   rootclient SOCKET agent
 *
 * Lookups print one line per NAME: "ok VALUE" or "err CODE MESSAGE".
 * Names are passed as real PCP passes them, with the terminating NUL counted
 * in the length (pmcd and its agents hand over the stored attribute's
 * length); with ROOTCLIENT_NAMELEN=strlen in the environment, without it.
 * "agent" starts cat through the socket on pipes, echoes a line through it,
 * terminates it and reaps it, printing one "ok"/"fail" line per step.
 * Exit status: 0 when every line is ok, 1 otherwise, 2 for usage errors.
 */
#include <pcp/pmapi.h>
#include <pcp/pmda.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void
report_err(const char *what, int sts)
{
    char msg[PM_MAXERRMSGLEN];
    printf("err %d %s\n", sts, pmErrStr_r(sts, msg, sizeof(msg)));
    (void)what;
    failures++;
}

static void
check(int ok, const char *step, const char *detail)
{
    printf("%s %s %s\n", ok ? "ok" : "fail", step, detail);
    if (!ok)
	failures++;
}

static int
lookup(int fd, const char *op, const char *name)
{
    char buf[MAXPATHLEN];
    const char *form = getenv("ROOTCLIENT_NAMELEN");
    int sts, len = (int)strlen(name);

    if (form == NULL || strcmp(form, "strlen") != 0)
	len++;	/* the NUL, as pmcd, pmdalinux and pmdaproc send it */

    if (strcmp(op, "pid") == 0) {
	if ((sts = pmdaRootContainerProcessID(fd, name, len)) < 0)
	    report_err(op, sts);
	else
	    printf("ok %d\n", sts);
    } else if (strcmp(op, "hostname") == 0) {
	if ((sts = pmdaRootContainerHostName(fd, name, len, buf, sizeof(buf))) < 0)
	    report_err(op, sts);
	else
	    printf("ok %s\n", buf);
    } else if (strcmp(op, "cgroup") == 0) {
	if ((sts = pmdaRootContainerCGroupName(fd, name, len, buf, sizeof(buf))) < 0)
	    report_err(op, sts);
	else
	    printf("ok %s\n", buf);
    } else {
	return -1;
    }
    return 0;
}

static void
agent(int fd)
{
    const char label[] = "cat";
    const char args[] = "/bin/cat";
    const char line[] = "through libpcp_pmda\n";
    char buf[64], detail[128];
    int pid = 0, infd = -1, outfd = -1, status = 0, sts, got, i;
    ssize_t n;

    sts = pmdaRootProcessStart(fd, 2 /* pipe */, label, (int)strlen(label),
			       args, (int)strlen(args), &pid, &infd, &outfd);
    snprintf(detail, sizeof(detail), "sts=%d pid=%d infd=%d outfd=%d", sts, pid, infd, outfd);
    check(sts >= 0 && pid > 0 && infd >= 0 && outfd >= 0, "start", detail);
    if (sts < 0 || pid <= 0)
	return;

    n = write(infd, line, strlen(line));
    memset(buf, 0, sizeof(buf));
    n = n > 0 ? read(outfd, buf, sizeof(buf) - 1) : -1;
    check(n == (ssize_t)strlen(line) && strcmp(buf, line) == 0, "echo", n > 0 ? "line came back" : "no data");

    sts = pmdaRootProcessTerminate(fd, pid);
    snprintf(detail, sizeof(detail), "sts=%d", sts);
    check(sts >= 0, "terminate", detail);

    /* pmcd reaps with pid -1 until its child shows up */
    for (got = 0, i = 0; i < 500 && got != pid; i++) {
	got = pmdaRootProcessWait(fd, -1, &status);
	if (got < 0)
	    break;
	if (got == 0)
	    usleep(10000);
    }
    snprintf(detail, sizeof(detail), "pid=%d status=0x%x signaled=%d sig=%d",
	     got, status, WIFSIGNALED(status), WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    check(got == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "wait", detail);

    /* a pid this server never started must be refused, and left alive */
    sts = pmdaRootProcessTerminate(fd, getpid());
    snprintf(detail, sizeof(detail), "sts=%d", sts);
    check(sts == -EPERM && kill(getpid(), 0) == 0, "refuse-foreign", detail);

    close(infd);
    close(outfd);
}

int
main(int argc, char **argv)
{
    int fd, i;

    if (argc < 3) {
	fprintf(stderr, "usage: %s SOCKET connect|agent|pid|hostname|cgroup [NAME...]\n", argv[0]);
	return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if ((fd = pmdaRootConnect(argv[1])) < 0) {
	report_err("connect", fd);
	return 1;
    }
    if (strcmp(argv[2], "connect") == 0) {
	printf("ok connected\n");
    } else if (strcmp(argv[2], "agent") == 0) {
	agent(fd);
    } else {
	for (i = 3; i < argc; i++)
	    if (lookup(fd, argv[2], argv[i]) < 0) {
		fprintf(stderr, "unknown operation %s\n", argv[2]);
		return 2;
	    }
    }
    pmdaRootShutdown(fd);
    close(fd);
    return failures ? 1 : 0;
}
