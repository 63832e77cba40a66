/* The pod sandbox ("pause") image's only program, built by tests/common/images.rs with
 * `gcc -static -O2 -o pause pause.c`: it holds the pod's namespaces, sleeps until SIGTERM
 * or SIGINT, and exits 0. As pid 1 of its pid namespace it also reaps orphans (SIGCHLD). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t done;

static void stop(int sig) { (void)sig; done = 1; }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    /* Blocked outside sigsuspend, so a signal between the test and the wait is not lost. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    while (!done) {
        sigsuspend(&old);
    }
    return 0;
}
