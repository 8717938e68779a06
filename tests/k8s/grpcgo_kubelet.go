// grpcgo_kubelet.go - the kubelet's side of the device-plugin API on grpc-go (the kubelet's own
// gRPC stack, Debian's golang-google-grpc-dev), dialling as the kubelet's device manager does:
// it serves Registration on kubelet.sock, dials the plugin back from inside Register (blocking,
// 10 s), reads the options, opens ListAndWatch, then Allocates and checks the answers and the
// error statuses. The message types are generated at test time from k8s/proto by protoc-gen-go.
// Usage: grpcgo_kubelet PLUGIN_DIR RESOURCE; prints PASS/FAIL lines and `N passed, N failed`.
package main

import (
    "context"
    "fmt"
    "net"
    "os"
    "path/filepath"
    "strings"
    "time"

    "google.golang.org/grpc"
    "google.golang.org/grpc/codes"
    "google.golang.org/grpc/status"

    pb "vgpu.test/v1beta1"
)

type registration struct {
    pb.UnimplementedRegistrationServer
    dir      string
    resource string
    result   chan error
    client chan pb.DevicePluginClient
}

func dialUnix(ctx context.Context, path string) (*grpc.ClientConn, error) {
    return grpc.DialContext(ctx, path, grpc.WithInsecure(), grpc.WithBlock(),
        grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
            return (&net.Dialer{}).DialContext(ctx, "unix", addr)
        }))
}

// Register does what the kubelet's device manager does before it answers: dial the plugin's
// endpoint and ask for its options.
func (r *registration) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.Empty, error) {
    if req.Version != "v1beta1" || req.ResourceName != r.resource {
        r.result <- fmt.Errorf("version %q resource %q", req.Version, req.ResourceName)
        return nil, status.Errorf(codes.InvalidArgument, "version %q resource %q", req.Version,
            req.ResourceName)
    }
    dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
    defer cancel()
    conn, err := dialUnix(dctx, filepath.Join(r.dir, req.Endpoint))
    if err != nil {
        r.result <- fmt.Errorf("dial-back: %v", err)
        return nil, status.Errorf(codes.Unavailable, "dial-back: %v", err)
    }
    c := pb.NewDevicePluginClient(conn)
    opts, err := c.GetDevicePluginOptions(dctx, &pb.Empty{})
    if err != nil {
        r.result <- fmt.Errorf("GetDevicePluginOptions: %v", err)
        return nil, err
    }
    if !opts.GetPreferredAllocationAvailable {
        r.result <- fmt.Errorf("options %v", opts)
    } else {
        r.result <- nil
    }
    r.client <- c
    return &pb.Empty{}, nil
}

var passed, failed int

func check(name string, err error) {
    if err != nil {
        fmt.Printf("FAIL %s: %v\n", name, err)
        failed++
    } else {
        fmt.Printf("PASS %s\n", name)
        passed++
    }
}

func main() {
    if len(os.Args) != 3 {
        fmt.Fprintln(os.Stderr, "usage: grpcgo_kubelet PLUGIN_DIR RESOURCE")
        os.Exit(2)
    }
    dir, resource := os.Args[1], os.Args[2]
    sock := filepath.Join(dir, "kubelet.sock")
    os.Remove(sock)
    lis, err := net.Listen("unix", sock)
    if err != nil {
        fmt.Printf("FAIL listen %s: %v\n0 passed, 1 failed\n", sock, err)
        os.Exit(1)
    }
    srv := grpc.NewServer()
    reg := &registration{dir: dir, resource: resource, result: make(chan error, 4), client: make(chan pb.DevicePluginClient, 4)}
    pb.RegisterRegistrationServer(srv, reg)
    go srv.Serve(lis)
    defer srv.Stop()
    fmt.Println("grpc-go kubelet stand-in serving", sock)

    var c pb.DevicePluginClient
    select {
    case err := <-reg.result:
        check("register_with_dial_back", err)
        if err != nil {
            break
        }
        c = <-reg.client
    case <-time.After(60 * time.Second):
        check("register_with_dial_back", fmt.Errorf("the plugin never registered"))
    }
    if c != nil {
        ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
        defer cancel()

        stream, err := c.ListAndWatch(ctx, &pb.Empty{})
        var n int
        if err == nil {
            var resp *pb.ListAndWatchResponse
            resp, err = stream.Recv()
            if err == nil {
                n = len(resp.Devices)
                if n == 0 || resp.Devices[0].ID != "slice-0000" || resp.Devices[0].Health != "Healthy" {
                    err = fmt.Errorf("first list: %v", resp.Devices)
                }
            }
        }
        check("list_and_watch", err)

        ids := []string{"slice-0001", "slice-0002"}
        pref, err := c.GetPreferredAllocation(ctx, &pb.PreferredAllocationRequest{
            ContainerRequests: []*pb.ContainerPreferredAllocationRequest{{
                AvailableDeviceIDs: []string{"slice-0002", "slice-0001", "slice-0005"},
                AllocationSize:     2}}})
        if err == nil && strings.Join(pref.ContainerResponses[0].DeviceIDs, ",") != strings.Join(ids, ",") {
            err = fmt.Errorf("preferred %v", pref.ContainerResponses[0].DeviceIDs)
        }
        check("get_preferred_allocation", err)

        resp, err := c.Allocate(ctx, &pb.AllocateRequest{
            ContainerRequests: []*pb.ContainerAllocateRequest{{DevicesIds: ids}}})
        if err == nil {
            cr := resp.ContainerResponses[0]
            switch {
            case len(cr.CdiDevices) != 1 || cr.CdiDevices[0].Name != "vgpu.dev/zone=k8s-s1-n2":
                err = fmt.Errorf("cdi devices %v", cr.CdiDevices)
            case cr.Envs["VGPU_SOCKET"] != "/run/vgpu/gpu.sock" || cr.Envs["VGPU_ZONE"] != "k8s-s1-n2":
                err = fmt.Errorf("envs %v", cr.Envs)
            case len(cr.Mounts) != 3 || len(cr.Devices) != 0:
                err = fmt.Errorf("mounts %v devices %v", cr.Mounts, cr.Devices)
            }
        }
        check("allocate_two_slices", err)

        _, err = c.Allocate(ctx, &pb.AllocateRequest{
            ContainerRequests: []*pb.ContainerAllocateRequest{{DevicesIds: []string{"slice-9999", "gpu%0"}}}})
        st, _ := status.FromError(err)
        if err == nil || st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "unknown device id") {
            check("allocate_unknown_id_status", fmt.Errorf("got %v", err))
        } else {
            check("allocate_unknown_id_status", nil)
        }

        _, err = c.Allocate(ctx, &pb.AllocateRequest{
            ContainerRequests: []*pb.ContainerAllocateRequest{{}}})
        st, _ = status.FromError(err)
        if err == nil || st.Code() != codes.InvalidArgument {
            check("allocate_zero_devices_status", fmt.Errorf("got %v", err))
        } else {
            check("allocate_zero_devices_status", nil)
        }

        _, err = c.PreStartContainer(ctx, &pb.PreStartContainerRequest{DevicesIds: ids})
        check("pre_start_container", err)
    }
    fmt.Printf("%d passed, %d failed\n", passed, failed)
    if failed > 0 {
        os.Exit(1)
    }
}
