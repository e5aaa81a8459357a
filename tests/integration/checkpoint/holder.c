/* A process whose state a checkpoint must keep: 100 MiB of anonymous memory filled with a known
 * pattern, a file open at an offset, a pipe holding unread bytes, a file on a private tmpfs. It prints
 * "ready <checksum>" to /out/report, then waits for /out/verify and appends what it finds then.
 * Built static by tests/integration/tests/checkpoint.rs so it runs in a busybox rootfs. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIZE (100UL << 20)

static uint64_t sum(const uint64_t *m, size_t n) {
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) h = (h ^ m[i]) * 1099511628211ULL;
	return h;
}

int main(void) {
	uint64_t *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) return 1;
	uint64_t x = 88172645463325252ULL;
	for (size_t i = 0; i < SIZE / 8; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		m[i] = x;
	}
	uint64_t before = sum(m, SIZE / 8);
	int f = open("/var/held", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (f < 0 || write(f, "0123456789", 10) != 10 || lseek(f, 4, SEEK_SET) != 4) return 2;
	int p[2];
	if (pipe(p) || write(p[1], "in-the-pipe", 11) != 11) return 3;
	int t = open("/scratch/tmpfs-file", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (t < 0 || write(t, "on-tmpfs", 8) != 8) return 4;
	FILE *r = fopen("/out/report", "w");
	if (!r) return 5;
	fprintf(r, "ready %016llx\n", (unsigned long long)before);
	fclose(r);
	while (access("/out/verify", F_OK) != 0) usleep(100000);
	char buf[32] = {0};
	r = fopen("/out/report", "a");
	if (!r) return 6;
	fprintf(r, "memory %s\n", sum(m, SIZE / 8) == before ? "same" : "changed");
	fprintf(r, "file offset %ld\n", (long)lseek(f, 0, SEEK_CUR));
	memset(buf, 0, sizeof buf);
	fprintf(r, "file read %zd %s\n", read(f, buf, 6), buf);
	memset(buf, 0, sizeof buf);
	fprintf(r, "pipe read %zd %s\n", read(p[0], buf, 11), buf);
	memset(buf, 0, sizeof buf);
	fprintf(r, "tmpfs read %zd %s\n", pread(t, buf, 8, 0), buf);
	fclose(r);
	return 0;
}
