/* netsend HOST PORT BYTES: connects and sends BYTES zeros in 1 MiB writes. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: netsend HOST PORT BYTES\n"); return 2; }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
    long long left = atoll(argv[3]);
    static char buf[1 << 20];
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    while (left > 0) {
        ssize_t n = write(s, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
        if (n < 0) { perror("write"); return 1; }
        left -= n;
    }
    shutdown(s, SHUT_WR);
    while (read(s, buf, sizeof buf) > 0) {}
    return 0;
}
