# libs.mk - link flags for users of gpu-proxy/ptx/libptx.a (include, then add $(PTX_LIBS)).
PTX_LIBS := $(shell pkg-config --libs libzstd liblz4) -lm -pthread
