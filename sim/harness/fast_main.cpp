// Free-running Verilator harness of the EqProp core: C++ drives every clock, the host script only
// writes a command file and reads the answers (Python at sample boundaries at most).
//
// Commands (stdin-like text file, one per line):
//   W n i j v      write weight W_n[i][j]          B n i v     write bias b_n[i]
//   T t            set the sample counter          S learn label p0 .. p_{in-1}   run one sample
//   D              dump every weight and bias      Q n         read n-th phase states (0 free, 1 nudged, 2 neg)
// Answers (stdout): "P pred cycles" per sample, "w n i j v" / "b n i v" per dump line, "q phase k i v",
// and at the end "C cycles samples update_sat weight_sat bias_sat act_low act_high unsettled cycling t".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#include "access_layout.h"   // generated from eqfpga.hdl.core.ACCESS_LAYOUT and the config
// (Verilator spells the Verilog port "access__valid" as access___05Fvalid: "__" is escaped)

static Vtop* top;

static void tick() {
    top->clk = 0;
    top->eval();
    top->clk = 1;
    top->eval();
}

static void set_bits(uint32_t* w, int off, int width, uint64_t v) {
    for (int b = 0; b < width; b++) {
        int bit = off + b;
        uint32_t m = 1u << (bit % 32);
        if ((v >> b) & 1) w[bit / 32] |= m; else w[bit / 32] &= ~m;
    }
}

static int32_t access(int op, int layer, int row, int col, int32_t data) {
    uint32_t w[ACC_WORDS] = {0};
    set_bits(w, ACC_OP_OFF, ACC_OP_W, op);
    set_bits(w, ACC_LAYER_OFF, ACC_LAYER_W, layer);
    set_bits(w, ACC_ROW_OFF, ACC_ROW_W, row);
    set_bits(w, ACC_COL_OFF, ACC_COL_W, col);
    set_bits(w, ACC_DATA_OFF, ACC_DATA_W, (uint32_t)data);
    ACC_ASSIGN(top->access___05Fpayload, w);
    top->access___05Fvalid = 1;
    top->eval();
    while (!top->access___05Fready) { tick(); top->eval(); }
    tick();
    top->access___05Fvalid = 0;
    top->eval();
    while (!top->access_rsp___05Fvalid) { tick(); top->eval(); }
    int32_t v = (int32_t)top->access_rsp___05Fpayload;
    tick();
    return v;
}

static void push_sample(uint32_t v) {
    top->sample___05Fpayload = v;
    top->sample___05Fvalid = 1;
    top->eval();
    while (!top->sample___05Fready) { tick(); top->eval(); }
    tick();
}

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    if (argc < 2) { std::fprintf(stderr, "usage: %s commands.txt\n", argv[0]); return 2; }
    top = new Vtop;
    top->result___05Fready = 1;
    top->access_rsp___05Fready = 1;
    top->rst = 1;
    for (int i = 0; i < 3; i++) tick();
    top->rst = 0;
    tick();
    std::ifstream in(argv[1]);
    std::string line;
    const int sizes[] = {SIZES};
    const int n_layers = sizeof(sizes) / sizeof(sizes[0]) - 1;
    while (std::getline(in, line)) {
        std::istringstream ss(line);
        std::string c;
        if (!(ss >> c)) continue;
        if (c == "W") { int n, i, j, v; ss >> n >> i >> j >> v; access(1, n, i, j, v); }
        else if (c == "B") { int n, i, v; ss >> n >> i >> v; access(3, n, i, 0, v); }
        else if (c == "T") {
            uint32_t t; ss >> t;
            top->t_value = t; top->t_set = 1; tick(); top->t_set = 0; tick();
        } else if (c == "S") {
            int learn, label; ss >> learn >> label;
            uint32_t c0 = top->cycles;
            top->learn = learn;
            for (int j = 0; j < sizes[0]; j++) { uint32_t p; ss >> p; push_sample(p); }
            push_sample(label);
            top->sample___05Fvalid = 0;
            top->learn = 0;
            top->eval();
            while (!top->result___05Fvalid) { tick(); top->eval(); }
            int pred = top->result___05Fpayload;
            tick();
            std::printf("P %d %u\n", pred, top->cycles - c0);
        } else if (c == "D") {
            for (int n = 0; n < n_layers; n++) {
                for (int i = 0; i < sizes[n + 1]; i++)
                    for (int j = 0; j < sizes[n]; j++) std::printf("w %d %d %d %d\n", n, i, j, access(0, n, i, j, 0));
                for (int i = 0; i < sizes[n + 1]; i++) std::printf("b %d %d %d\n", n, i, access(2, n, i, 0, 0));
            }
        } else if (c == "Q") {
            int ph; ss >> ph;
            for (int k = 1; k <= n_layers; k++)
                for (int i = 0; i < sizes[k]; i++) std::printf("q %d %d %d %d\n", ph, k, i, access(4, k, ph, i, 0));
        }
    }
    std::printf("C %u %u %u %u %u %u %u %u %u %u\n", top->cycles, top->samples, top->update_sat, top->weight_sat,
                top->bias_sat, top->act_low, top->act_high, top->unsettled, top->cycling, top->t);
    top->final();
    delete top;
    return 0;
}
