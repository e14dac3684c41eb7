/* SPDX-License-Identifier: MIT */
// RESP2 (net/resp.h) on the client port's hot path.
//   ParseSet       pipelined SET commands exactly as `redis-benchmark -t set -P 16 -d N
//                  -r 100000` sends them (multibulk, 16-byte keys "key:000000012345",
//                  values of 'x'): one iteration parses one 16-command write, with the
//                  caller advancing over each command as pipeline/server.c does;
//   ParseGet       the same for GET;
//   ParseSetSplit  the 16 SETs arrive cut into 64-byte reads, so the parser resumes
//                  mid-command (its incremental path; the byte stream is re-offered from
//                  the command's start, as the server's read buffer does);
//   ReplyOk        16 "+OK\r\n" replies through aegis__resp_add_simple into a reused
//                  write buffer, then consumed (sent);
//   ReplyBulk      16 bulk replies of N bytes through aegis__resp_add_bulk (GET hits);
//   ReplyFlushRaw  what pipeline/server.c does for 16 SET replies today: each reply is
//                  its own malloc'd "+OK\r\n" (dup_bytes), then conn_flush copies them
//                  into a fresh write buffer with aegis__resp_add_raw, frees them, and
//                  copies the buffer into a malloc'd write request (18 allocations and
//                  two copies per batch; here all on one thread, so no remote frees).
// items/s counts commands or replies.
#include "bm_common.h"

#define _Noreturn [[noreturn]]
extern "C" {
#include "net/resp.h"
}
#undef _Noreturn

#include <algorithm>
#include <vector>

namespace {

constexpr int kPipeline = 16;

std::string multibulk(const std::vector<std::string> &args)
{
    std::string s = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto &a : args) {
        s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    }
    return s;
}

std::string pipeline_of(bool set, size_t value_bytes)
{
    std::string value(value_bytes, 'x');
    std::string out;
    for (int i = 0; i < kPipeline; i++) {
        std::string k = bm::key((uint64_t)(i * 6151 + 17) % 100000);
        out += set ? multibulk({"SET", k, value}) : multibulk({"GET", k});
    }
    return out;
}

void parse_pipeline(benchmark::State &state, bool set)
{
    const size_t value_bytes = (size_t)state.range(0);
    std::string input = pipeline_of(set, value_bytes);
    std::vector<char> buf(input.begin(), input.end());
    struct aegis_resp_parser p;
    aegis__resp_parser_init(&p, nullptr, nullptr);
    for (auto _ : state) {
        size_t used = 0;
        int cmds = 0;
        while (used < buf.size()) {
            struct aegis_resp_cmd cmd;
            if (aegis__resp_parse(&p, buf.data() + used, buf.size() - used, &cmd) != 1) {
                bm::die("parse");
            }
            benchmark::DoNotOptimize(cmd.argv[cmd.argc - 1].ptr);
            used += cmd.bytes;
            cmds++;
        }
        if (cmds != kPipeline) {
            bm::die("parse count");
        }
    }
    aegis__resp_parser_close(&p);
    state.SetItemsProcessed((int64_t)state.iterations() * kPipeline);
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)buf.size());
}

void BM_RespParseSet(benchmark::State &state)
{
    parse_pipeline(state, true);
}

void BM_RespParseGet(benchmark::State &state)
{
    parse_pipeline(state, false);
}

void BM_RespParseSetSplit(benchmark::State &state)
{
    const size_t value_bytes = (size_t)state.range(0);
    const size_t chunk = 64;
    std::string input = pipeline_of(true, value_bytes);
    std::vector<char> buf(input.begin(), input.end());
    struct aegis_resp_parser p;
    aegis__resp_parser_init(&p, nullptr, nullptr);
    int64_t calls = 0;
    for (auto _ : state) {
        size_t used = 0;    // Start of the command being parsed.
        size_t arrived = 0; // Bytes "read" from the socket so far.
        int cmds = 0;
        while (used < buf.size()) {
            if (arrived == used) {
                arrived = std::min(arrived + chunk, buf.size()); // Nothing buffered: read.
            }
            struct aegis_resp_cmd cmd;
            int rv = aegis__resp_parse(&p, buf.data() + used, arrived - used, &cmd);
            calls++;
            if (rv == 1) {
                used += cmd.bytes;
                cmds++;
            } else if (rv == 0 && arrived < buf.size()) {
                arrived = std::min(arrived + chunk, buf.size()); // Incomplete: read more.
            } else {
                bm::die("parse");
            }
        }
        if (cmds != kPipeline) {
            bm::die("parse count");
        }
    }
    aegis__resp_parser_close(&p);
    state.SetItemsProcessed((int64_t)state.iterations() * kPipeline);
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)buf.size());
    state.counters["parse_calls_per_cmd"] =
        (double)calls / ((double)state.iterations() * kPipeline);
}

void BM_RespReplyOk(benchmark::State &state)
{
    struct aegis_resp_wbuf w;
    aegis__resp_wbuf_init(&w, nullptr, 0);
    for (auto _ : state) {
        for (int i = 0; i < kPipeline; i++) {
            if (aegis__resp_add_simple(&w, "OK") != 0) {
                bm::die("add_simple");
            }
        }
        benchmark::DoNotOptimize(w.data);
        aegis__resp_wbuf_consume(&w, w.len);
    }
    aegis__resp_wbuf_close(&w);
    state.SetItemsProcessed((int64_t)state.iterations() * kPipeline);
}

void BM_RespReplyBulk(benchmark::State &state)
{
    const size_t value_bytes = (size_t)state.range(0);
    std::string value(value_bytes, 'x');
    struct aegis_resp_wbuf w;
    aegis__resp_wbuf_init(&w, nullptr, 0);
    size_t bytes = 0;
    for (auto _ : state) {
        for (int i = 0; i < kPipeline; i++) {
            if (aegis__resp_add_bulk(&w, value.data(), value.size()) != 0) {
                bm::die("add_bulk");
            }
        }
        benchmark::DoNotOptimize(w.data);
        bytes = w.len;
        aegis__resp_wbuf_consume(&w, w.len);
    }
    aegis__resp_wbuf_close(&w);
    state.SetItemsProcessed((int64_t)state.iterations() * kPipeline);
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)bytes);
}

void BM_RespReplyFlushRaw(benchmark::State &state)
{
    static const char ok[] = "+OK\r\n";
    const size_t ok_len = sizeof(ok) - 1;
    char *slots[kPipeline];
    for (auto _ : state) {
        // The apply thread: one small allocation per reply (server.c's dup_bytes).
        for (int i = 0; i < kPipeline; i++) {
            slots[i] = (char *)malloc(ok_len);
            if (slots[i] == nullptr) {
                bm::die("malloc");
            }
            memcpy(slots[i], ok, ok_len);
        }
        // The net thread's conn_flush: a fresh write buffer, copy and free each reply.
        struct aegis_resp_wbuf w;
        aegis__resp_wbuf_init(&w, nullptr, 0);
        for (int i = 0; i < kPipeline; i++) {
            if (aegis__resp_add_raw(&w, slots[i], ok_len) != 0) {
                bm::die("add_raw");
            }
            free(slots[i]);
        }
        // The write request: one more allocation holding a copy, freed when the write
        // completes.
        char *wr = (char *)malloc(w.len);
        if (wr == nullptr) {
            bm::die("malloc");
        }
        memcpy(wr, w.data, w.len);
        aegis__resp_wbuf_close(&w);
        benchmark::DoNotOptimize(wr);
        free(wr);
    }
    state.SetItemsProcessed((int64_t)state.iterations() * kPipeline);
}

BENCHMARK(BM_RespParseSet)->ArgName("value_bytes")->Arg(3)->Arg(128)->Arg(4096);
BENCHMARK(BM_RespParseGet)->ArgName("value_bytes")->Arg(0);
BENCHMARK(BM_RespParseSetSplit)->ArgName("value_bytes")->Arg(128);
BENCHMARK(BM_RespReplyOk);
BENCHMARK(BM_RespReplyBulk)->ArgName("value_bytes")->Arg(128)->Arg(4096);
BENCHMARK(BM_RespReplyFlushRaw);

}  // namespace

BENCHMARK_MAIN();
