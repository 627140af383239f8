/* Replays a fuzz target's seed corpus when libFuzzer is not available, so
 * that every decoder still meets its seeds in an ordinary build. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *buf;
	size_t n;

	if (f == NULL)
		return -1;
	if (fstat(fileno(f), &st) != 0 || st.st_size > (1 << 24)) {
		fclose(f);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		fclose(f);
		return -1;
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int count = 0;

	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;

		if (d == NULL) {
			if (replay_file(argv[i]) == 0)
				count++;
			continue;
		}
		while ((e = readdir(d)) != NULL) {
			char path[4096];
			int w;

			if (e->d_name[0] == '.')
				continue;
			w = snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (w < 0 || (size_t)w >= sizeof(path))
				continue;
			if (replay_file(path) == 0)
				count++;
		}
		closedir(d);
	}
	/* Empty and one-byte inputs are always worth a try. */
	LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
	LLVMFuzzerTestOneInput((const uint8_t *)"\xff", 1);
	printf("replayed %d inputs\n", count);
	return 0;
}
