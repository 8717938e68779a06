# idm-protocol/libs.mk - link flags for users of libidm.a. Include it from another component's
# Makefile (include $(TOP)/idm-protocol/libs.mk), then link with $(IDM_LIBS) and compile with
# $(IDM_CPPFLAGS). Build the library first with $(MAKE) -C $(IDM_DIR).
# IDM_SYS_LIBS: the system libraries alone (the Xen ones when transport_xen.c exists; Debian 12
# names libxenctrl's pkg-config file "xencontrol").
IDM_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
IDM_LIB := $(IDM_DIR)/libidm.a
IDM_CPPFLAGS := -I$(IDM_DIR)
IDM_SYS_LIBS := -pthread
ifneq ($(wildcard $(IDM_DIR)/transport_xen.c),)
IDM_SYS_LIBS += $(shell pkg-config --libs xencontrol xenstore xengnttab xenevtchn)
endif
IDM_LIBS := $(IDM_LIB) $(IDM_SYS_LIBS)
