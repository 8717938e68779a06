// textures.cu - end-to-end (issue 16): CUDA arrays, texture and surface objects. A 2D float
// array written with cudaMemcpy2DToArray and fetched with point and linear filtering under
// clamp, border, wrap and mirror addressing (normalised coordinates for the last two), a u8
// array read as normalised floats, a 1D linear texture (tex1Dfetch), a pitch2D texture, and a
// surface written by one kernel, read by another and copied back with cudaMemcpy2DFromArray;
// a 3D array written with cudaMemcpy3D and fetched with trilinear filtering, a layered array,
// a gather (tex2Dgather); every fetch checked against a CPU reference of the CUDA Programming
// Guide's texture fetching rules (linear weights in 9-bit fixed point with 8 fractional bits).
#include "check.h"

#define W 13
#define H 7
#define NC 96 // coordinates fetched per texture

__global__ void fetch2d(cudaTextureObject_t t, const float2 *c, float *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = tex2D<float>(t, c[i].x, c[i].y);
}

__global__ void fetch1d(cudaTextureObject_t t, float *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = tex1Dfetch<float>(t, i - 3); // out-of-range indices read 0
}

__global__ void surf_write(cudaSurfaceObject_t s, int w, int h)
{
    int x = threadIdx.x, y = blockIdx.x;
    if (x < w && y < h)
        surf2Dwrite(x * 100 + y, s, x * (int)sizeof(int), y);
}

__global__ void surf_read(cudaSurfaceObject_t s, int *out, int w, int h)
{
    int x = threadIdx.x, y = blockIdx.x;
    if (x < w && y < h)
        out[y * w + x] = surf2Dread<int>(s, x * (int)sizeof(int), y) + 1;
}

__global__ void fetch3d(cudaTextureObject_t t, const float4 *c, float *out, int n, int layered)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = layered ? tex2DLayered<float>(t, c[i].x, c[i].y, (int)c[i].z)
                         : tex3D<float>(t, c[i].x, c[i].y, c[i].z);
}

__global__ void gather(cudaTextureObject_t t, float *out, float x, float y)
{
    float4 g = tex2Dgather<float4>(t, x, y, 0);
    out[0] = g.x, out[1] = g.y, out[2] = g.z, out[3] = g.w;
}

// ---- the CPU reference ----

static float texel(const float *t, int w, int h, int x, int y, cudaTextureAddressMode m,
                   int *border)
{
    int xy[2] = {x, y}, n[2] = {w, h};
    for (int k = 0; k < 2; k++) {
        int i = xy[k], s = n[k];
        if (m == cudaAddressModeBorder) {
            if (i < 0 || i >= s) {
                *border = 1;
                return 0.0f;
            }
        } else if (m == cudaAddressModeWrap) {
            i = ((i % s) + s) % s;
        } else if (m == cudaAddressModeMirror) {
            i = ((i % (2 * s)) + 2 * s) % (2 * s);
            i = i < s ? i : 2 * s - 1 - i;
        } else {
            i = i < 0 ? 0 : i >= s ? s - 1 : i;
        }
        xy[k] = i;
    }
    return t[xy[1] * w + xy[0]];
}

static float fixed8(float f) // the fraction as 9-bit fixed point, 8 fractional bits
{
    return floorf(f * 256.0f + 0.5f) / 256.0f;
}

static float ref2d(const float *t, int w, int h, float u, float v, cudaTextureAddressMode m,
                   cudaTextureFilterMode f, int norm)
{
    float x = norm ? u * w : u, y = norm ? v * h : v;
    int b = 0;
    if (!norm && (m == cudaAddressModeWrap || m == cudaAddressModeMirror))
        m = cudaAddressModeClamp; // only clamp and border without normalised coordinates
    if (f == cudaFilterModePoint) {
        float r = texel(t, w, h, (int)floorf(x), (int)floorf(y), m, &b);
        return b ? 0.0f : r;
    }
    float xb = x - 0.5f, yb = y - 0.5f;
    int i = (int)floorf(xb), j = (int)floorf(yb);
    float a = fixed8(xb - floorf(xb)), c = fixed8(yb - floorf(yb)), s = 0.0f;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            b = 0;
            float v0 = texel(t, w, h, i + dx, j + dy, m, &b);
            s += (dx ? a : 1 - a) * (dy ? c : 1 - c) * (b ? 0.0f : v0);
        }
    return s;
}

static cudaTextureObject_t make_tex(cudaResourceDesc *rd, cudaTextureAddressMode m,
                                    cudaTextureFilterMode f, int norm, cudaTextureReadMode rm)
{
    cudaTextureDesc td;
    memset(&td, 0, sizeof(td));
    td.addressMode[0] = td.addressMode[1] = m;
    td.filterMode = f;
    td.normalizedCoords = norm;
    td.readMode = rm;
    cudaTextureObject_t t = 0;
    CK(cudaCreateTextureObject(&t, rd, &td, NULL));
    return t;
}

// Fetches NC coordinates (multiples of 1/64, from -1.5 to 1.5 texture extents) from t and
// compares with the reference over host texels ref.
static void check2d(struct report *r, cudaTextureObject_t t, const float *ref, int w, int h,
                    cudaTextureAddressMode m, cudaTextureFilterMode f, int norm, float2 *dc,
                    float *dout, double tol)
{
    float2 hc[NC];
    float got[NC];
    unsigned s = 7 + (unsigned)m * 3 + (unsigned)f * 11 + (unsigned)norm * 29;
    for (int i = 0; i < NC; i++) {
        float u = ((int)(lcg(&s) % (64 * 3 * 64)) - 64 * 64 * 1.5f) / (64.0f * 64.0f);
        float v = ((int)(lcg(&s) % (64 * 3 * 64)) - 64 * 64 * 1.5f) / (64.0f * 64.0f);
        hc[i].x = norm ? u : u * w;
        hc[i].y = norm ? v : v * h;
        hc[i].x = floorf(hc[i].x * 64.0f) / 64.0f;
        hc[i].y = floorf(hc[i].y * 64.0f) / 64.0f;
    }
    CK(cudaMemcpy(dc, hc, sizeof(hc), cudaMemcpyHostToDevice));
    fetch2d<<<1, NC>>>(t, dc, dout, NC);
    CK(cudaGetLastError());
    CK(cudaMemcpy(got, dout, sizeof(got), cudaMemcpyDeviceToHost));
    for (int i = 0; i < NC; i++) {
        float want = ref2d(ref, w, h, hc[i].x, hc[i].y, m, f, norm);
        r->checked++;
        if (!close_enough(got[i], want, tol))
            report_bad(r, r->checked - 1, got[i], want);
    }
}

static void test_array2d(struct report *r, float2 *dc, float *dout)
{
    float ht[H][W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            ht[y][x] = (float)(x * x) * 0.5f - (float)y * 3.0f + 1.0f;
    cudaChannelFormatDesc cd = cudaCreateChannelDesc<float>();
    cudaArray_t a;
    CK(cudaMallocArray(&a, &cd, W, H));
    CK(cudaMemcpy2DToArray(a, 0, 0, ht, W * sizeof(float), W * sizeof(float), H,
                           cudaMemcpyHostToDevice));
    cudaResourceDesc rd;
    memset(&rd, 0, sizeof(rd));
    rd.resType = cudaResourceTypeArray;
    rd.res.array.array = a;
    const cudaTextureAddressMode modes[4] = {cudaAddressModeClamp, cudaAddressModeBorder,
                                             cudaAddressModeWrap, cudaAddressModeMirror};
    for (int mi = 0; mi < 4; mi++)
        for (int f = 0; f < 2; f++)
            for (int norm = 0; norm < 2; norm++) {
                if (!norm && mi >= 2)
                    continue;
                cudaTextureFilterMode fm = f ? cudaFilterModeLinear : cudaFilterModePoint;
                cudaTextureObject_t t = make_tex(&rd, modes[mi], fm, norm, cudaReadModeElementType);
                check2d(r, t, &ht[0][0], W, H, modes[mi], fm, norm, dc, dout, 1e-5);
                CK(cudaDestroyTextureObject(t));
            }
    // the descriptor comes back as created
    cudaChannelFormatDesc got;
    cudaExtent ext;
    unsigned flags;
    CK(cudaArrayGetInfo(&got, &ext, &flags, a));
    if (got.x != 32 || got.f != cudaChannelFormatKindFloat || ext.width != W || ext.height != H) {
        fprintf(stderr, "textures: cudaArrayGetInfo: %d bits kind %d, %zux%zu\n", got.x,
                (int)got.f, ext.width, ext.height);
        r->bad++;
    }
    CK(cudaFreeArray(a));
}

// A u8 array read as normalised floats, linear filtering.
static void test_u8(struct report *r, float2 *dc, float *dout)
{
    unsigned char hb[H][W];
    float ref[H][W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            hb[y][x] = (unsigned char)((x * 37 + y * 91) & 0xff);
            ref[y][x] = hb[y][x] / 255.0f;
        }
    cudaChannelFormatDesc cd = cudaCreateChannelDesc<unsigned char>();
    cudaArray_t a;
    CK(cudaMallocArray(&a, &cd, W, H));
    CK(cudaMemcpy2DToArray(a, 0, 0, hb, W, W, H, cudaMemcpyHostToDevice));
    cudaResourceDesc rd;
    memset(&rd, 0, sizeof(rd));
    rd.resType = cudaResourceTypeArray;
    rd.res.array.array = a;
    for (int f = 0; f < 2; f++) {
        cudaTextureFilterMode fm = f ? cudaFilterModeLinear : cudaFilterModePoint;
        cudaTextureObject_t t = make_tex(&rd, cudaAddressModeClamp, fm, 1,
                                         cudaReadModeNormalizedFloat);
        check2d(r, t, &ref[0][0], W, H, cudaAddressModeClamp, fm, 1, dc, dout, 2e-3);
        CK(cudaDestroyTextureObject(t));
    }
    CK(cudaFreeArray(a));
}

// A 1D linear texture (tex1Dfetch: integer indices, out of range reads 0) and a pitch2D one.
static void test_linear(struct report *r, float2 *dc, float *dout)
{
    const int n = 200;
    float hv[n], got[NC];
    for (int i = 0; i < n; i++)
        hv[i] = (float)i * 1.25f - 7.0f;
    float *dv;
    CK(cudaMalloc(&dv, n * sizeof(float)));
    CK(cudaMemcpy(dv, hv, sizeof(hv), cudaMemcpyHostToDevice));
    cudaResourceDesc rd;
    memset(&rd, 0, sizeof(rd));
    rd.resType = cudaResourceTypeLinear;
    rd.res.linear.devPtr = dv;
    rd.res.linear.desc = cudaCreateChannelDesc<float>();
    rd.res.linear.sizeInBytes = 50 * sizeof(float);
    cudaTextureObject_t t = make_tex(&rd, cudaAddressModeClamp, cudaFilterModePoint, 0,
                                     cudaReadModeElementType);
    fetch1d<<<1, NC>>>(t, dout, NC);
    CK(cudaGetLastError());
    CK(cudaMemcpy(got, dout, sizeof(got), cudaMemcpyDeviceToHost));
    for (int i = 0; i < NC; i++) {
        int k = i - 3;
        float want = k >= 0 && k < 50 ? hv[k] : 0.0f;
        r->checked++;
        if (got[i] != want)
            report_bad(r, r->checked - 1, got[i], want);
    }
    CK(cudaDestroyTextureObject(t));

    // pitch2D over a cudaMallocPitch'ed W x H image
    float ht[H][W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            ht[y][x] = (float)(x + 1) * (float)(y + 2);
    float *dp;
    size_t pitch;
    CK(cudaMallocPitch(&dp, &pitch, W * sizeof(float), H));
    CK(cudaMemcpy2D(dp, pitch, ht, W * sizeof(float), W * sizeof(float), H,
                    cudaMemcpyHostToDevice));
    memset(&rd, 0, sizeof(rd));
    rd.resType = cudaResourceTypePitch2D;
    rd.res.pitch2D.devPtr = dp;
    rd.res.pitch2D.desc = cudaCreateChannelDesc<float>();
    rd.res.pitch2D.width = W;
    rd.res.pitch2D.height = H;
    rd.res.pitch2D.pitchInBytes = pitch;
    t = make_tex(&rd, cudaAddressModeClamp, cudaFilterModeLinear, 0, cudaReadModeElementType);
    check2d(r, t, &ht[0][0], W, H, cudaAddressModeClamp, cudaFilterModeLinear, 0, dc, dout,
            1e-5);
    CK(cudaDestroyTextureObject(t));
    CK(cudaFree(dp));
    CK(cudaFree(dv));
}

#define D3 5

// A W x H x D3 float array written with cudaMemcpy3D, fetched with trilinear filtering, as a
// layered array with point sampling, and gathered (tex2Dgather) from a 2D gather array.
static void test_3d_layered_gather(struct report *r, float *dout)
{
    static float h3[D3][H][W];
    for (int z = 0; z < D3; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                h3[z][y][x] = (float)(z * 1000 + y * 10 + x) * 0.25f;
    cudaChannelFormatDesc cd = cudaCreateChannelDesc<float>();
    float4 hc[NC], *dc4;
    float got[NC];
    CK(cudaMalloc(&dc4, sizeof(hc)));
    for (int layered = 0; layered < 2; layered++) {
        cudaArray_t a;
        CK(cudaMalloc3DArray(&a, &cd, make_cudaExtent(W, H, D3),
                             layered ? cudaArrayLayered : 0));
        cudaMemcpy3DParms p;
        memset(&p, 0, sizeof(p));
        p.srcPtr = make_cudaPitchedPtr(h3, W * sizeof(float), W, H);
        p.dstArray = a;
        p.extent = make_cudaExtent(W, H, D3);
        p.kind = cudaMemcpyHostToDevice;
        CK(cudaMemcpy3D(&p));
        cudaResourceDesc rd;
        memset(&rd, 0, sizeof(rd));
        rd.resType = cudaResourceTypeArray;
        rd.res.array.array = a;
        cudaTextureObject_t t = make_tex(&rd, cudaAddressModeClamp,
                                         layered ? cudaFilterModePoint : cudaFilterModeLinear, 0,
                                         cudaReadModeElementType);
        unsigned s = 99 + layered;
        for (int i = 0; i < NC; i++) {
            hc[i].x = (float)(lcg(&s) % (64 * (W + 2))) / 64.0f - 1.0f;
            hc[i].y = (float)(lcg(&s) % (64 * (H + 2))) / 64.0f - 1.0f;
            hc[i].z = layered ? (float)(lcg(&s) % D3) : (float)(lcg(&s) % (64 * D3)) / 64.0f;
        }
        CK(cudaMemcpy(dc4, hc, sizeof(hc), cudaMemcpyHostToDevice));
        fetch3d<<<1, NC>>>(t, dc4, dout, NC, layered);
        CK(cudaGetLastError());
        CK(cudaMemcpy(got, dout, sizeof(got), cudaMemcpyDeviceToHost));
        for (int i = 0; i < NC; i++) {
            float want;
            if (layered) {
                want = ref2d(&h3[(int)hc[i].z][0][0], W, H, hc[i].x, hc[i].y,
                             cudaAddressModeClamp, cudaFilterModePoint, 0);
            } else { // trilinear: two bilinear slices weighed along z
                float zb = hc[i].z - 0.5f, c = fixed8(zb - floorf(zb));
                int k0 = (int)floorf(zb), k1 = k0 + 1;
                k0 = k0 < 0 ? 0 : k0 >= D3 ? D3 - 1 : k0;
                k1 = k1 < 0 ? 0 : k1 >= D3 ? D3 - 1 : k1;
                want = (1 - c) * ref2d(&h3[k0][0][0], W, H, hc[i].x, hc[i].y,
                                       cudaAddressModeClamp, cudaFilterModeLinear, 0) +
                       c * ref2d(&h3[k1][0][0], W, H, hc[i].x, hc[i].y, cudaAddressModeClamp,
                                 cudaFilterModeLinear, 0);
            }
            r->checked++;
            if (!close_enough(got[i], want, 1e-5))
                report_bad(r, r->checked - 1, got[i], want);
        }
        CK(cudaDestroyTextureObject(t));
        CK(cudaFreeArray(a));
    }
    CK(cudaFree(dc4));
    // gather: the 2x2 footprint of (x, y) as (i, j+1), (i+1, j+1), (i+1, j), (i, j)
    cudaArray_t g;
    CK(cudaMallocArray(&g, &cd, W, H, cudaArrayTextureGather));
    CK(cudaMemcpy2DToArray(g, 0, 0, h3[2], W * sizeof(float), W * sizeof(float), H,
                           cudaMemcpyHostToDevice));
    cudaResourceDesc rd;
    memset(&rd, 0, sizeof(rd));
    rd.resType = cudaResourceTypeArray;
    rd.res.array.array = g;
    cudaTextureObject_t t = make_tex(&rd, cudaAddressModeClamp, cudaFilterModePoint, 0,
                                     cudaReadModeElementType);
    gather<<<1, 1>>>(t, dout, 4.75f, 3.25f);
    CK(cudaGetLastError());
    CK(cudaMemcpy(got, dout, 4 * sizeof(float), cudaMemcpyDeviceToHost));
    const float want[4] = {h3[2][3][4], h3[2][3][5], h3[2][2][5], h3[2][2][4]};
    for (int i = 0; i < 4; i++) {
        r->checked++;
        if (got[i] != want[i])
            report_bad(r, r->checked - 1, got[i], want[i]);
    }
    CK(cudaDestroyTextureObject(t));
    CK(cudaFreeArray(g));
}

// A surface written by one kernel and read back by another and by a copy.
static void test_surface(struct report *r)
{
    cudaChannelFormatDesc cd = cudaCreateChannelDesc<int>();
    cudaArray_t a;
    CK(cudaMallocArray(&a, &cd, W, H, cudaArraySurfaceLoadStore));
    cudaResourceDesc rd;
    memset(&rd, 0, sizeof(rd));
    rd.resType = cudaResourceTypeArray;
    rd.res.array.array = a;
    cudaSurfaceObject_t s;
    CK(cudaCreateSurfaceObject(&s, &rd));
    int *dout, hout[H][W], hcopy[H][W];
    CK(cudaMalloc(&dout, sizeof(hout)));
    surf_write<<<H, W>>>(s, W, H);
    CK(cudaGetLastError());
    surf_read<<<H, W>>>(s, dout, W, H);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hout, dout, sizeof(hout), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy2DFromArray(hcopy, W * sizeof(int), a, 0, 0, W * sizeof(int), H,
                             cudaMemcpyDeviceToHost));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            r->checked += 2;
            if (hout[y][x] != x * 100 + y + 1)
                report_bad(r, y * W + x, hout[y][x], x * 100 + y + 1);
            if (hcopy[y][x] != x * 100 + y)
                report_bad(r, y * W + x, hcopy[y][x], x * 100 + y);
        }
    CK(cudaDestroySurfaceObject(s));
    CK(cudaFree(dout));
    CK(cudaFreeArray(a));
}

int main(void)
{
    struct report r = {"textures", 0, 0};
    float2 *dc;
    float *dout;
    CK(cudaMalloc(&dc, NC * sizeof(float2)));
    CK(cudaMalloc(&dout, NC * sizeof(float)));
    test_array2d(&r, dc, dout);
    test_u8(&r, dc, dout);
    test_linear(&r, dc, dout);
    test_3d_layered_gather(&r, dout);
    test_surface(&r);
    CK(cudaFree(dc));
    CK(cudaFree(dout));
    return report_done(&r);
}
