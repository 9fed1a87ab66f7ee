// The simulated board: LinkedCore (UART + protocol engine + core) in Verilator, behind a pty.
// eqfpga.sim.boardsim builds and starts it. Usage: boardsim DIVISOR
//
// Opens a pseudo-terminal (raw mode), prints the slave's path on stdout (one line), then bridges:
// bytes the host writes to the slave are read from the master and serialised onto `rx` (8N1, LSB
// first, DIVISOR clock cycles a bit); bits on `tx` are deserialised (sampled mid-bit) and written to
// the master, where the host reads them. The clock runs while anything is in flight; when the design
// reports `idle` and no byte is pending in either direction the harness blocks in poll(), so an idle
// board costs no CPU. It exits when its stdin closes (the Python side went away).

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

static VerilatedContext* ctx;
static Vtop* top;
static int D = 4;                      // clock cycles per bit

static void die(const char* what) {
    fprintf(stderr, "boardsim: %s: %s\n", what, strerror(errno));
    exit(3);
}

static inline void tick() {
    top->clk = 0;
    top->eval();
    top->clk = 1;
    top->eval();
}

// host -> design: one 10-bit frame at a time
static std::deque<uint8_t> inq;
static uint16_t ser_frame = 0;
static int ser_bits = 0, ser_cnt = 0;  // bits left in the frame, cycles left in the bit

// design -> host
static std::vector<uint8_t> outq;
static int des_state = 0;              // 0 idle, 1 in a frame
static int des_cnt = 0, des_bit = 0;
static uint16_t des_shift = 0;

static inline void serialise() {
    if (ser_bits == 0) {
        if (inq.empty()) { top->rx = 1; return; }
        ser_frame = (uint16_t)((inq.front() << 1) | (1u << 9));   // start 0, data LSB first, stop 1
        inq.pop_front();
        ser_bits = 10;
        ser_cnt = D;
    }
    top->rx = ser_frame & 1;
    if (--ser_cnt == 0) {
        ser_frame >>= 1;
        ser_bits--;
        ser_cnt = D;
    }
}

static inline void deserialise() {
    int line = top->tx & 1;
    if (des_state == 0) {
        if (!line) { des_state = 1; des_cnt = D / 2; des_bit = 0; des_shift = 0; }
        return;
    }
    if (--des_cnt) return;
    des_cnt = D;
    if (des_bit == 0) {                 // middle of the start bit
        if (line) { des_state = 0; return; }
    } else if (des_bit <= 8) {
        des_shift |= (uint16_t)(line << (des_bit - 1));
    } else {                            // middle of the stop bit
        if (line) outq.push_back((uint8_t)des_shift);
        else fprintf(stderr, "boardsim: framing error on tx\n");
        des_state = 0;
        return;
    }
    des_bit++;
}

static int master = -1;

static void read_master() {
    uint8_t buf[4096];
    for (;;) {
        ssize_t r = read(master, buf, sizeof buf);
        if (r > 0) { inq.insert(inq.end(), buf, buf + r); continue; }
        if (r < 0 && (errno == EAGAIN || errno == EINTR || errno == EIO)) return;
        return;
    }
}

static void write_master() {
    size_t done = 0;
    while (done < outq.size()) {
        ssize_t w = write(master, outq.data() + done, outq.size() - done);
        if (w > 0) { done += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        break;                           // EAGAIN: the host is not reading; keep the rest
    }
    outq.erase(outq.begin(), outq.begin() + (long)done);
}

static bool stdin_closed() {
    struct pollfd p = {0, POLLIN, 0};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
        char c;
        ssize_t r = read(0, &c, 1);
        return r <= 0;
    }
    return false;
}

int main(int argc, char** argv) {
    if (argc > 1) D = atoi(argv[1]);
    if (D < 4) { fprintf(stderr, "boardsim: divisor must be >= 4\n"); return 2; }
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) die("posix_openpt");
    const char* name = ptsname(master);
    if (!name) die("ptsname");
    // Our own handle on the slave: keeps the master from reporting hang-up (and poll() from
    // spinning) while no host has the port open. Raw mode: no echo, no line discipline.
    int slave = open(name, O_RDWR | O_NOCTTY);
    if (slave < 0) die("open slave");
    struct termios t;
    if (tcgetattr(slave, &t)) die("tcgetattr");
    cfmakeraw(&t);
    if (tcsetattr(slave, TCSANOW, &t)) die("tcsetattr");
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    printf("%s\n", name);
    fflush(stdout);

    ctx = new VerilatedContext;
    ctx->commandArgs(argc, argv);
    top = new Vtop{ctx};
    top->rx = 1;
    top->rst = 1;
    for (int i = 0; i < 4; i++) tick();
    top->rst = 0;
    tick();

    uint64_t batches = 0;
    for (;;) {
        bool active = !top->idle || !inq.empty() || ser_bits || des_state;
        if (!active) {
            // nothing in flight: sleep until the host writes, the host drains our output, or quits
            struct pollfd p[2] = {{master, (short)(POLLIN | (outq.empty() ? 0 : POLLOUT)), 0},
                                  {0, POLLIN, 0}};
            if (poll(p, 2, -1) < 0 && errno != EINTR) die("poll");
            if (p[1].revents && stdin_closed()) break;
            if (p[0].revents & POLLIN) read_master();
            if (!outq.empty()) write_master();
            continue;
        }
        for (int i = 0; i < 256; i++) {
            serialise();
            tick();
            deserialise();
        }
        read_master();
        if (!outq.empty()) write_master();
        if ((++batches & 1023) == 0 && stdin_closed()) break;
    }
    top->final();
    delete top;
    delete ctx;
    close(slave);
    close(master);
    return 0;
}
