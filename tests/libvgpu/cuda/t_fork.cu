// t_fork.cu - a child forked after CUDA is initialised cannot use it (it would share the
// parent's connection): it gets an initialisation error, never a hang or a crash, and the parent
// keeps working.
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

int main()
{
    void *d = nullptr;
    CHECK(cudaMalloc(&d, 4096));
    fflush(stdout);
    pid_t pid = fork();
    EXPECT(pid >= 0, "fork");
    if (pid == 0) {
        void *c = nullptr;
        cudaError_t e = cudaMalloc(&c, 16);
        _exit(e == cudaErrorInitializationError ? 0 : 10 + (int)e);
    }
    int st = 0;
    EXPECT(waitpid(pid, &st, 0) == pid, "waitpid");
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d (10 + cudaError)",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    char msg[] = "parent", back[8] = {};
    CHECK(cudaMemcpy(d, msg, sizeof msg, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(back, d, sizeof msg, cudaMemcpyDeviceToHost));
    EXPECT(strcmp(back, msg) == 0, "parent round trip after fork");
    CHECK(cudaFree(d));
    return finish("t_fork");
}
