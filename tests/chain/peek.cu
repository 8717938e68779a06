// peek.cu - the cross-zone attack of issue 13, as a tenant would try it. Two modes:
//   peek hold       allocates 1 MiB, fills it with a pattern, prints "ADDR 0x..." and waits for
//                   a line on stdin, then checks its data is unchanged (exit 0) or not (exit 1).
//   peek read ADDR  launches a kernel that reads and overwrites ADDR (another zone's address)
//                   and copies what it read back; exit 0 when the launch fails with
//                   cudaErrorIllegalAddress, 1 when the kernel read the other zone's data.
//   peek spin       launches a kernel that never ends, prints "LAUNCHED" and waits for it (the
//                   test kills the process: its worker must stop the kernel).
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATTERN 0x5eed1234u
#define WORDS (256u * 1024u)

__global__ void steal(const unsigned *victim, unsigned *loot, unsigned *victim_w)
{
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    loot[i] = victim[i];
    victim_w[i] = 0xdeadbeefu;
}

__global__ void forever(volatile unsigned *flag)
{
    while (*flag == 0)
        ;
}

static int spin(void)
{
    unsigned *flag;

    if (cudaMalloc(&flag, sizeof(*flag)) != cudaSuccess ||
        cudaMemset(flag, 0, sizeof(*flag)) != cudaSuccess)
        return 2;
    forever<<<1, 1>>>(flag);
    if (cudaGetLastError() != cudaSuccess)
        return 2;
    printf("LAUNCHED\n");
    fflush(stdout);
    cudaError_t e = cudaDeviceSynchronize();
    fprintf(stderr, "peek spin: the never-ending kernel ended: %s\n", cudaGetErrorName(e));
    return 1;
}

static int hold(void)
{
    unsigned *d, *h = (unsigned *)malloc(WORDS * sizeof(unsigned));
    char line[64];

    if (h == NULL)
        return 2;
    for (unsigned i = 0; i < WORDS; i++)
        h[i] = PATTERN ^ i;
    if (cudaMalloc(&d, WORDS * sizeof(unsigned)) != cudaSuccess ||
        cudaMemcpy(d, h, WORDS * sizeof(unsigned), cudaMemcpyHostToDevice) != cudaSuccess) {
        fprintf(stderr, "peek hold: setting up the victim's buffer failed\n");
        return 2;
    }
    printf("ADDR %p\n", (void *)d);
    fflush(stdout);
    if (fgets(line, sizeof(line), stdin) == NULL)
        return 2;
    memset(h, 0, WORDS * sizeof(unsigned));
    if (cudaMemcpy(h, d, WORDS * sizeof(unsigned), cudaMemcpyDeviceToHost) != cudaSuccess) {
        fprintf(stderr, "peek hold: reading the buffer back failed\n");
        return 2;
    }
    for (unsigned i = 0; i < WORDS; i++) {
        if (h[i] != (PATTERN ^ i)) {
            fprintf(stderr, "peek hold: word %u changed to 0x%x\n", i, h[i]);
            return 1;
        }
    }
    printf("peek hold: the victim's data is intact\n");
    return 0;
}

static int peek(const char *addr_s)
{
    unsigned *victim = (unsigned *)(uintptr_t)strtoull(addr_s, NULL, 0);
    unsigned *loot, *h = (unsigned *)calloc(WORDS, sizeof(unsigned));
    cudaError_t e;

    if (h == NULL || cudaMalloc(&loot, WORDS * sizeof(unsigned)) != cudaSuccess)
        return 2;
    steal<<<WORDS / 256, 256>>>(victim, loot, victim);
    e = cudaDeviceSynchronize();
    if (e == cudaErrorIllegalAddress) {
        printf("peek read: %s: cudaErrorIllegalAddress, as it must\n", addr_s);
        return 0;
    }
    if (e == cudaSuccess && cudaMemcpy(h, loot, WORDS * sizeof(unsigned),
                                       cudaMemcpyDeviceToHost) == cudaSuccess) {
        unsigned same = 0;
        for (unsigned i = 0; i < WORDS; i++)
            same += h[i] == (PATTERN ^ i);
        fprintf(stderr, "peek read: the kernel ran; %u of %u words are the victim's\n", same,
                WORDS);
        return 1;
    }
    fprintf(stderr, "peek read: unexpected result %s (%d)\n", cudaGetErrorName(e), (int)e);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "hold") == 0)
        return hold();
    if (argc == 2 && strcmp(argv[1], "spin") == 0)
        return spin();
    if (argc == 3 && strcmp(argv[1], "read") == 0)
        return peek(argv[2]);
    fprintf(stderr, "usage: peek hold | peek read ADDR | peek spin\n");
    return 2;
}
