# libs.mk - link flags for users of gpu-proxy/ptx/libptx.a (include, then add $(PTX_LIBS)).
LLVM_CONFIG ?= llvm-config-14
# the translator (ptx_jit.c) uses LLVM's C API and its ORC JIT
PTX_LLVM_CFLAGS := -isystem $(shell $(LLVM_CONFIG) --includedir)
PTX_LIBS := $(shell pkg-config --libs libzstd liblz4) \
            $(shell $(LLVM_CONFIG) --ldflags) $(shell $(LLVM_CONFIG) --libs) -lm -pthread
