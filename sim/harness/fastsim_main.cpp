// Free-running Verilator harness of the EqProp core (eqfpga.sim.fastsim builds and drives it).
// Usage: fastsim [STUCK] -- STUCK: clock cycles a sample or an access may take before the harness
// reports the core as hung and exits (default 1e8).
//
// The clock runs here, in C++; Python talks to the process only at sample boundaries, through a
// binary command protocol on stdin / the original stdout (everything the design or Verilator
// prints goes to stderr). All integers are little-endian. A request is one opcode byte and its
// payload; every answer starts with 'K' (then the payload) or 'E' (u32 length, message).
//
// Memories are the core's memory views (eqfpga.hdl.memory_map.memory_views), ids in their order; the
// generated fastsim_cfg.h reads them from the flattened model (any depth of submodule nesting).
//
//   'H'                              hello: u32 version (2), u32 memories, then per memory u32 depth,
//                                    u32 bits, u32 snapshot memories, then their u32 ids (every view
//                                    of kind state and d0, in order), u32 counters, then per counter
//                                    u16 length, its port name
//   'L' u32 n, n x {u32 mem, u32 field_bits, u32 fields, u32 signed, u32 count, i64 pos[count]}
//                                    checksum layout: pos[addr * fields + f] = the logical index of
//                                    the parameter in field f of word addr (-1: unused field);
//                                    count = depth * fields
//   'A' u32 n, n x {u8 op, u8 layer, u16 row, u16 col, i32 data}
//                                    access commands through the access port -> u32 n, i32 rsp[n]
//   'T' u32 t                        pulse t_set with t_value = t
//   'R' u32 seed                     drive the seed port with seed (held; 0 until the first 'R')
//   'C'                              counters -> u32 n, u32 value[n]: the core's 32-bit outputs
//                                    (cycles, samples, t, the event counters), in hello's order
//   'S' u32 n, u32 in, u8 learn, u8 want_checksum, u16 px[n * in], u16 label[n]
//                                    run n samples -> n x {u32 pred, u32 cycles, u64 checksum},
//                                    f64 seconds spent clocking, u64 clock cycles simulated
//   'Z' u32 in, u8 learn, u16 px[in], u16 label, u32 m, u32 offset[m] (ascending)
//                                    one sample with snapshots of the snapshot memories right after
//                                    the clock edge at which the core's `cycles` counter reaches
//                                    c0 + offset[k]
//                                    -> u32 pred, u32 cycles, u64 checksum, u32 m (snapshots taken),
//                                    then per snapshot the raw words of each snapshot memory in
//                                    hello's order
//   'M' u32 mem                      raw memory contents -> u32 depth, u32 words_per_entry, u32 data[]
//   'K'                              checksum of all weights and biases (read from the memories)
//   'V' u8 on, u16 len, char path[len]   start (on = 1) or stop a waveform dump (FST when built
//                                    with FS_TRACE=2, VCD with FS_TRACE=1)
//   'Q'                              quit
//
// Checksum of the parameters (the same function as eqfpga.sim.fastsim.param_checksum):
//   sum over every weight and bias, mod 2**64, of mix64((pos * 0x9E3779B97F4A7C15) ^ value),
//   value the sign-extended 64-bit integer, pos its index in the logical order, mix64 the
//   splitmix64 finaliser. One wrong value always changes it (mix64 is a bijection).

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"
#if FS_TRACE == 2
#include "verilated_fst_c.h"
typedef VerilatedFstC TraceFile;
#elif FS_TRACE
#include "verilated_vcd_c.h"
typedef VerilatedVcdC TraceFile;
#endif

// ---- 32-bit words -> value, for every Verilator storage type (fs_copy, the other way, is in the
// generated header) ------------------------------------------------------------------------------
template <std::size_t N>
static inline void fs_assign(VlWide<N>& v, const uint32_t* in) {
    for (std::size_t i = 0; i < N; i++) v[i] = in[i];
}
static inline void fs_assign(CData& v, const uint32_t* in) { v = (CData)in[0]; }
static inline void fs_assign(SData& v, const uint32_t* in) { v = (SData)in[0]; }
static inline void fs_assign(IData& v, const uint32_t* in) { v = in[0]; }
static inline void fs_assign(QData& v, const uint32_t* in) { v = (QData)in[0] | ((QData)in[1] << 32); }

static inline void put_bits(uint32_t* w, int lo, int width, uint64_t value) {
    for (int b = 0; b < width; b++) {
        int bit = lo + b;
        if ((value >> b) & 1) w[bit >> 5] |= 1u << (bit & 31);
    }
}

static inline uint64_t get_bits(const uint32_t* w, int lo, int width) {
    // width <= 64; gather up to three 32-bit words
    int wi = lo >> 5, sh = lo & 31;
    unsigned __int128 acc = (unsigned __int128)w[wi] | ((unsigned __int128)w[wi + 1] << 32) |
                            ((unsigned __int128)w[wi + 2] << 64);
    acc >>= sh;
    if (width >= 64) return (uint64_t)acc;
    return (uint64_t)acc & ((1ull << width) - 1);
}

// The generated, config-specific part: memory accessors (fs_mem_word, fs_snap_mems) and the access
// payload layout.
#include "fastsim_cfg.h"

static inline uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// ---- I/O -----------------------------------------------------------------------------------
static int out_fd = 1;
static std::vector<uint8_t> obuf;

static void die(const char* msg) {
    fprintf(stderr, "fastsim: %s\n", msg);
    exit(3);
}

static void read_all(void* p, size_t n) {
    uint8_t* b = (uint8_t*)p;
    while (n) {
        ssize_t r = read(0, b, n);
        if (r == 0) exit(0);  // Python went away
        if (r < 0) {
            if (errno == EINTR) continue;
            die("read error");
        }
        b += r;
        n -= (size_t)r;
    }
}
template <class T> static T rd() { T v; read_all(&v, sizeof v); return v; }

template <class T> static void put(T v) {
    const uint8_t* p = (const uint8_t*)&v;
    obuf.insert(obuf.end(), p, p + sizeof v);
}
static void flush() {
    const uint8_t* p = obuf.data();
    size_t n = obuf.size();
    while (n) {
        ssize_t w = write(out_fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write error");
        }
        p += w;
        n -= (size_t)w;
    }
    obuf.clear();
}
static void error(const std::string& msg) {
    obuf.clear();
    put<uint8_t>('E');
    put<uint32_t>((uint32_t)msg.size());
    obuf.insert(obuf.end(), msg.begin(), msg.end());
    flush();
}

// ---- the simulation ------------------------------------------------------------------------
static VerilatedContext* ctx;
static Vtop* top;
static Vtop___024root* root;
static uint64_t nclk = 0;
#if FS_TRACE
static TraceFile* tfp = nullptr;
#endif
static uint64_t ts = 0;
static uint64_t STUCK = 100000000ull;  // cycles without progress: the core hangs (argv[1] sets it)

// One half period of the clock: drive the level, evaluate, dump; a rising edge counts a cycle.
static inline void half(bool high) {
    top->clk = high;
    top->eval();
#if FS_TRACE
    if (tfp) tfp->dump(ts);
#endif
    ts++;
    if (high) nclk++;
}
static inline void half_low() { half(false); }
static inline void half_high() { half(true); }
static inline void tick() { half_low(); half_high(); }

static void reset() {
    top->sample___05Fvalid = 0;
    top->access___05Fvalid = 0;
    top->t_set = 0;
    top->seed = 0;
    top->learn = 0;
    top->result___05Fready = 1;
    top->access_rsp___05Fready = 1;
    top->rst = 1;
    for (int i = 0; i < 3; i++) tick();
    top->rst = 0;
    tick();
}

static int32_t access(uint8_t op, uint8_t layer, uint16_t row, uint16_t col, int32_t data) {
    uint32_t w[8] = {0};
    put_bits(w, FS_ACC_OP_OFF, FS_ACC_OP_W, op);
    put_bits(w, FS_ACC_LAYER_OFF, FS_ACC_LAYER_W, layer);
    put_bits(w, FS_ACC_ROW_OFF, FS_ACC_ROW_W, row);
    put_bits(w, FS_ACC_COL_OFF, FS_ACC_COL_W, col);
    put_bits(w, FS_ACC_DATA_OFF, FS_ACC_DATA_W, (uint32_t)data);
    fs_assign(top->access___05Fpayload, w);
    top->access___05Fvalid = 1;
    uint64_t n = 0;
    for (;;) {
        half_low();
        bool fire = top->access___05Fready;
        half_high();
        if (fire) break;
        if (++n > STUCK) die("access port never ready");
    }
    top->access___05Fvalid = 0;
    for (n = 0;; n++) {
        half_low();
        bool v = top->access_rsp___05Fvalid;
        int32_t d = (int32_t)top->access_rsp___05Fpayload;
        half_high();
        if (v) return d;
        if (n > STUCK) die("no access response");
    }
}

// checksum layout per parameter memory (view)
struct Layout { int mem, field_bits, fields; bool is_signed; std::vector<int64_t> pos; };
static std::vector<Layout> layouts;

static uint64_t checksum() {
    uint64_t sum = 0;
    uint32_t w[FS_MAX_WORDS + 3];
    for (const Layout& L : layouts) {
        int depth = fs_mem_depth[L.mem];
        const int64_t* pos = L.pos.data();
        for (int a = 0; a < depth; a++) {
            std::memset(w, 0, sizeof w);
            fs_mem_word(root, L.mem, a, w);
            for (int f = 0; f < L.fields; f++) {
                int64_t p = pos[(size_t)a * L.fields + f];
                if (p < 0) continue;
                uint64_t v = get_bits(w, f * L.field_bits, L.field_bits);
                if (L.is_signed && L.field_bits < 64 && ((v >> (L.field_bits - 1)) & 1)) v |= ~0ull << L.field_bits;
                sum += mix64(((uint64_t)p * 0x9E3779B97F4A7C15ull) ^ v);
            }
        }
    }
    return sum;
}

static void put_mem(int mem) {
    uint32_t w[FS_MAX_WORDS + 3];
    int nw = (fs_mem_bits[mem] + 31) / 32;
    for (int a = 0; a < fs_mem_depth[mem]; a++) {
        std::memset(w, 0, sizeof w);
        fs_mem_word(root, mem, a, w);
        for (int i = 0; i < nw; i++) put<uint32_t>(w[i]);
    }
}

struct SnapPlan { const uint32_t* offsets; uint32_t m; uint32_t taken; };

static void snapshot() {
    for (int k = 0; k < FS_NSNAP; k++) put_mem(fs_snap_mems[k]);
}

// One sample: stream pixels then the label, wait for the result. Returns the prediction.
static uint32_t run_sample(const uint16_t* px, uint32_t nin, uint16_t label, bool learn,
                           SnapPlan* snap) {
    uint32_t c0 = top->cycles;
    top->learn = learn;
    top->sample___05Fvalid = 1;
    uint32_t idx = 0;
    uint64_t n = 0;
    while (idx <= nin) {
        top->sample___05Fpayload = idx < nin ? px[idx] : label;
        half_low();
        bool fire = top->sample___05Fready;
        half_high();
        if (fire) idx++;
        if (snap) while (snap->taken < snap->m && top->cycles - c0 == snap->offsets[snap->taken]) {
            snapshot(); snap->taken++;
        }
        if (++n > STUCK) die("sample port stuck");
    }
    top->sample___05Fvalid = 0;
    top->learn = 0;
    for (n = 0;; n++) {
        half_low();
        bool v = top->result___05Fvalid;
        uint32_t p = top->result___05Fpayload;
        half_high();
        if (snap) while (snap->taken < snap->m && top->cycles - c0 == snap->offsets[snap->taken]) {
            snapshot(); snap->taken++;
        }
        if (v) return p;
        if (n > STUCK) die("no result: the core hangs");
    }
}

int main(int argc, char** argv) {
    // the protocol keeps the original stdout; anything printed by the model goes to stderr
    out_fd = dup(1);
    dup2(2, 1);
    if (argc > 1 && argv[1][0] >= '0' && argv[1][0] <= '9') STUCK = strtoull(argv[1], nullptr, 10);
    ctx = new VerilatedContext;
    ctx->commandArgs(argc, argv);
#if FS_TRACE
    ctx->traceEverOn(true);
#endif
    top = new Vtop{ctx};
    root = top->rootp;
    reset();
    std::vector<uint16_t> px, lab;
    for (;;) {
        uint8_t op;
        ssize_t r = read(0, &op, 1);
        if (r == 0) break;
        if (r < 0) { if (errno == EINTR) continue; die("read error"); }
        switch (op) {
        case 'H': {
            put<uint8_t>('K');
            put<uint32_t>(2);
            put<uint32_t>(FS_NMEM);
            for (int i = 0; i < FS_NMEM; i++) { put<uint32_t>(fs_mem_depth[i]); put<uint32_t>(fs_mem_bits[i]); }
            put<uint32_t>(FS_NSNAP);
            for (int i = 0; i < FS_NSNAP; i++) put<uint32_t>(fs_snap_mems[i]);
            put<uint32_t>(FS_NCOUNTERS);
            for (int i = 0; i < FS_NCOUNTERS; i++) {
                uint16_t len = (uint16_t)std::strlen(fs_counter_names[i]);
                put<uint16_t>(len);
                obuf.insert(obuf.end(), fs_counter_names[i], fs_counter_names[i] + len);
            }
            flush();
            break;
        }
        case 'L': {
            uint32_t n = rd<uint32_t>();
            layouts.clear();
            bool ok = true;
            for (uint32_t k = 0; k < n; k++) {
                Layout L;
                L.mem = (int)rd<uint32_t>();
                L.field_bits = (int)rd<uint32_t>();
                L.fields = (int)rd<uint32_t>();
                L.is_signed = rd<uint32_t>() != 0;
                uint32_t count = rd<uint32_t>();
                L.pos.resize(count);
                read_all(L.pos.data(), count * sizeof(int64_t));
                if (L.mem < 0 || L.mem >= FS_NMEM || L.field_bits <= 0 || L.field_bits > 64 || L.fields <= 0 ||
                    (int64_t)L.fields * L.field_bits > fs_mem_bits[L.mem]) { ok = false; continue; }
                if ((uint64_t)L.fields * fs_mem_depth[L.mem] != count) ok = false;
                layouts.push_back(std::move(L));
            }
            if (!ok) { layouts.clear(); error("bad checksum layout"); break; }
            put<uint8_t>('K');
            flush();
            break;
        }
        case 'A': {
            uint32_t n = rd<uint32_t>();
            std::vector<uint8_t> cmd((size_t)n * 10);
            read_all(cmd.data(), cmd.size());
            put<uint8_t>('K');
            put<uint32_t>(n);
            for (uint32_t k = 0; k < n; k++) {
                const uint8_t* c = &cmd[(size_t)k * 10];
                uint16_t row, col; int32_t data;
                std::memcpy(&row, c + 2, 2); std::memcpy(&col, c + 4, 2); std::memcpy(&data, c + 6, 4);
                put<int32_t>(access(c[0], c[1], row, col, data));
            }
            flush();
            break;
        }
        case 'T': {
            uint32_t t = rd<uint32_t>();
            top->t_value = t;
            top->t_set = 1;
            tick();
            top->t_set = 0;
            tick();
            put<uint8_t>('K');
            flush();
            break;
        }
        case 'R': {
            top->seed = rd<uint32_t>();
            put<uint8_t>('K');
            flush();
            break;
        }
        case 'C': {
            put<uint8_t>('K');
            put<uint32_t>(FS_NCOUNTERS);
#define FS_PUT_COUNTER(name) put<uint32_t>(top->name);
            FS_COUNTERS(FS_PUT_COUNTER)
            flush();
            break;
        }
        case 'S': {
            uint32_t n = rd<uint32_t>(), nin = rd<uint32_t>();
            uint8_t learn = rd<uint8_t>(), want = rd<uint8_t>();
            px.resize((size_t)n * nin);
            lab.resize(n);
            read_all(px.data(), px.size() * 2);
            read_all(lab.data(), lab.size() * 2);
            put<uint8_t>('K');
            uint64_t clk0 = nclk;
            double sum_seconds = 0;
            for (uint32_t s = 0; s < n; s++) {
                uint32_t c0 = top->cycles;
                auto ts0 = std::chrono::steady_clock::now();
                uint32_t pred = run_sample(&px[(size_t)s * nin], nin, lab[s], learn, nullptr);
                sum_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - ts0).count();
                put<uint32_t>(pred);
                put<uint32_t>(top->cycles - c0);
                put<uint64_t>(want ? checksum() : 0);
            }
            put<double>(sum_seconds);
            put<uint64_t>(nclk - clk0);
            flush();
            break;
        }
        case 'Z': {
            uint32_t nin = rd<uint32_t>();
            uint8_t learn = rd<uint8_t>();
            px.resize(nin);
            read_all(px.data(), (size_t)nin * 2);
            uint16_t label = rd<uint16_t>();
            uint32_t m = rd<uint32_t>();
            std::vector<uint32_t> offs(m);
            read_all(offs.data(), (size_t)m * 4);
            // the snapshots are written into obuf as they are taken; the header goes in front
            SnapPlan sp{offs.data(), m, 0};
            uint32_t c0 = top->cycles;
            obuf.clear();
            uint32_t pred = run_sample(px.data(), nin, label, learn, &sp);
            std::vector<uint8_t> snaps;
            snaps.swap(obuf);
            put<uint8_t>('K');
            put<uint32_t>(pred);
            put<uint32_t>(top->cycles - c0);
            put<uint64_t>(checksum());
            put<uint32_t>(sp.taken);
            obuf.insert(obuf.end(), snaps.begin(), snaps.end());
            flush();
            break;
        }
        case 'M': {
            uint32_t mem = rd<uint32_t>();
            if (mem >= FS_NMEM) { error("no such memory"); break; }
            put<uint8_t>('K');
            put<uint32_t>(fs_mem_depth[mem]);
            put<uint32_t>((fs_mem_bits[mem] + 31) / 32);
            put_mem((int)mem);
            flush();
            break;
        }
        case 'K': {
            put<uint8_t>('K');
            put<uint64_t>(checksum());
            flush();
            break;
        }
        case 'V': {
            uint8_t on = rd<uint8_t>();
            uint16_t len = rd<uint16_t>();
            std::string path(len, '\0');
            read_all(&path[0], len);
#if FS_TRACE
            if (tfp) { tfp->close(); delete tfp; tfp = nullptr; }
            if (on) {
                tfp = new TraceFile;
                top->trace(tfp, 99);
                tfp->open(path.c_str());
            }
            put<uint8_t>('K');
            flush();
#else
            (void)on;
            error("this harness was built without waveform support (build it with wave=True)");
#endif
            break;
        }
        case 'Q': {
#if FS_TRACE
            if (tfp) { tfp->close(); delete tfp; tfp = nullptr; }
#endif
            put<uint8_t>('K');
            flush();
            top->final();
            delete top;
            delete ctx;
            return 0;
        }
        default:
            error(std::string("unknown command ") + std::to_string((int)op));
            break;
        }
    }
    return 0;
}
