# mk/common.mk - compiler flags shared by every component Makefile (include it after setting
# TOP to the repository root). CFLAGS ?= is the user's, += the project's; SANITIZE=address,undefined
# builds everything with those sanitizers; V=1 shows the commands.
CC ?= cc
CLANG ?= clang
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -MMD -MP -fPIC -pthread
CPPFLAGS += -D_GNU_SOURCE -I$(TOP)/idm-protocol
LDFLAGS += -pthread
CUDA_HOME ?= /usr/local/cuda
CUDA_INC := $(CUDA_HOME)/include
NVCC ?= $(CUDA_HOME)/bin/nvcc
# For nvcc links that use the toolkit's shared libraries (-cudart shared, -lcublas): a RUNPATH
# to them, as CMake's CUDA support sets, so the programs run without an ld.so.conf entry.
NVCC_RPATH := -Xlinker -rpath=$(CUDA_HOME)/lib64
PKG_CONFIG ?= pkg-config

ifneq ($(SANITIZE),)
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)
