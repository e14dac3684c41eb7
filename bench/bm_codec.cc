/* SPDX-License-Identifier: MIT */
// The peer wire codec (net/codec.h) on AppendEntries carrying 1, 16, 256 and 1024 entries
// of 128 B (a SET of a 128-byte value is about that size once encoded):
//   EncodeIov   aegis__codec_encode_size + aegis__codec_encode_iov, what the net thread
//               does per outgoing message: headers into scratch, payloads by reference;
//   EncodeSize  aegis__codec_encode_size alone (a walk that every encoder repeats);
//   EncodeFlat  aegis__codec_encode into one contiguous buffer (copies every payload);
//   Decode      aegis__codec_decode of the flat frame + aegis__msg_release, what the net
//               thread does per incoming frame (one allocation per payload and one for
//               the entries array), with aegis__codec_peek in front as the reader does.
// items/s counts entries, bytes/s frame bytes.
#include "bm_common.h"

#define _Noreturn [[noreturn]]
extern "C" {
#include "net/codec.h"
}
#undef _Noreturn

#include <vector>

namespace {

constexpr size_t kPayload = 128;

struct append_msg {
    struct aegis_msg m;
    std::vector<struct aegis_entry> entries;
    struct aegis_buf *payload = nullptr;

    explicit append_msg(uint32_t n)
    {
        payload = bm::payload(kPayload);
        entries.resize(n);
        memset(&m, 0, sizeof(m));
        m.type = AEGIS_MSG_APPEND_REQ;
        m.from = 1;
        m.to = 2;
        m.term = 7;
        m.append_req.prev_index = 100000;
        m.append_req.prev_term = 7;
        m.append_req.commit = 99990;
        for (uint32_t i = 0; i < n; i++) {
            entries[i].index = m.append_req.prev_index + 1 + i;
            entries[i].term = 7;
            entries[i].type = AEGIS_ENTRY_COMMAND;
            entries[i].timestamp = 1700000000000000000ull + i;
            entries[i].buf = payload;  // Borrowed by the message: one shared buffer.
        }
        m.append_req.entries_count = n;
        m.append_req.entries = entries.data();
    }
    ~append_msg() { aegis__buf_unref(payload); }
};

void set_counters(benchmark::State &state, uint32_t n, size_t frame_bytes)
{
    state.SetItemsProcessed((int64_t)state.iterations() * n);
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)frame_bytes);
    state.counters["frame_bytes"] = (double)frame_bytes;
}

void BM_CodecAppendEncodeIov(benchmark::State &state)
{
    const uint32_t n = (uint32_t)state.range(0);
    append_msg am(n);
    struct aegis_codec_size size;
    bm::check(aegis__codec_encode_size(&am.m, &size) == 0, "encode_size");
    std::vector<uint8_t> scratch(size.scratch_bytes);
    std::vector<struct iovec> iov(size.iov_count);
    size_t frame_bytes = 0;
    for (auto _ : state) {
        struct aegis_codec_size sz;
        size_t iov_count;
        if (aegis__codec_encode_size(&am.m, &sz) != 0 ||
            aegis__codec_encode_iov(&am.m, scratch.data(), scratch.size(), iov.data(),
                                    iov.size(), &iov_count, &frame_bytes) != 0) {
            bm::die("encode_iov");
        }
        benchmark::DoNotOptimize(iov.data());
        benchmark::ClobberMemory();
    }
    set_counters(state, n, frame_bytes);
    state.counters["iovecs"] = (double)size.iov_count;
}

// The size query alone: one walk over the entries. encode_iov, encode and encode_alloc
// each run it again internally before their own walk.
void BM_CodecAppendEncodeSize(benchmark::State &state)
{
    const uint32_t n = (uint32_t)state.range(0);
    append_msg am(n);
    struct aegis_codec_size size;
    for (auto _ : state) {
        if (aegis__codec_encode_size(&am.m, &size) != 0) {
            bm::die("encode_size");
        }
        benchmark::DoNotOptimize(size);
    }
    set_counters(state, n, size.frame_bytes);
}

void BM_CodecAppendEncodeFlat(benchmark::State &state)
{
    const uint32_t n = (uint32_t)state.range(0);
    append_msg am(n);
    struct aegis_codec_size size;
    bm::check(aegis__codec_encode_size(&am.m, &size) == 0, "encode_size");
    std::vector<uint8_t> out(size.frame_bytes);
    size_t len = 0;
    for (auto _ : state) {
        if (aegis__codec_encode(&am.m, out.data(), out.size(), &len) != 0) {
            bm::die("encode");
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters(state, n, len);
}

void BM_CodecAppendDecode(benchmark::State &state)
{
    const uint32_t n = (uint32_t)state.range(0);
    append_msg am(n);
    struct aegis_codec_size size;
    bm::check(aegis__codec_encode_size(&am.m, &size) == 0, "encode_size");
    std::vector<uint8_t> frame(size.frame_bytes);
    size_t len = 0;
    bm::check(aegis__codec_encode(&am.m, frame.data(), frame.size(), &len) == 0, "encode");
    for (auto _ : state) {
        size_t frame_len = 0;
        struct aegis_msg out;
        if (aegis__codec_peek(frame.data(), len, AEGIS_CODEC_FRAME_BYTES_MAX_DEFAULT,
                              &frame_len) != 1 ||
            aegis__codec_decode(frame.data(), frame_len, &out, nullptr) != 0) {
            bm::die("decode");
        }
        benchmark::DoNotOptimize(out.append_req.entries);
        aegis__msg_release(&out, nullptr);
    }
    set_counters(state, n, len);
}

void entry_counts(benchmark::internal::Benchmark *b)
{
    b->ArgName("entries");
    for (int64_t n : {1, 16, 256, 1024}) {
        b->Arg(n);
    }
}

BENCHMARK(BM_CodecAppendEncodeIov)->Apply(entry_counts);
BENCHMARK(BM_CodecAppendEncodeSize)->Apply(entry_counts);
BENCHMARK(BM_CodecAppendEncodeFlat)->Apply(entry_counts);
BENCHMARK(BM_CodecAppendDecode)->Apply(entry_counts);

}  // namespace

BENCHMARK_MAIN();
