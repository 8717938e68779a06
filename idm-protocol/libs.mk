# idm-protocol/libs.mk - link flags for users of libidm.a. Include it from another component's
# Makefile (include $(TOP)/idm-protocol/libs.mk), then link with $(IDM_LIBS) and compile with
# $(IDM_CPPFLAGS). Build the library first with $(MAKE) -C $(IDM_DIR).
# IDM_LIBS: libidm.a (every transport but Xen) and the system libraries it needs (IDM_SYS_LIBS;
# no Xen ones). A program that uses the Xen transport directly (gpu_proxy, the Xen tests) links
# $(IDM_XEN_LIBS) too, before or after $(IDM_LIBS): libidm_xen.a (pulled in whole with -u, since
# idm_transport_by_name refers to it only weakly), libidm.a again for what it calls, and the Xen
# libraries (Debian 12 names libxenctrl's pkg-config file "xencontrol"). Without it,
# idm_transport_by_name("xen") loads the plugin libvgpu-xen.so.1 (idm_transport.c).
IDM_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
IDM_LIB := $(IDM_DIR)/libidm.a
IDM_CPPFLAGS := -I$(IDM_DIR)
IDM_SYS_LIBS := -pthread -ldl
IDM_LIBS := $(IDM_LIB) $(IDM_SYS_LIBS)
ifneq ($(wildcard $(IDM_DIR)/transport_xen.c),)
IDM_XEN_LIB := $(IDM_DIR)/libidm_xen.a
IDM_XEN_SYS_LIBS := $(shell pkg-config --libs xencontrol xenstore xengnttab xenevtchn)
IDM_XEN_LIBS := -Wl,-u,idm_transport_xen $(IDM_XEN_LIB) $(IDM_LIB) $(IDM_XEN_SYS_LIBS) \
                $(IDM_SYS_LIBS)
endif
