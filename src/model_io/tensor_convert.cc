// Half, bfloat16 and Q8_0 decoding; the conversion of a tensor's bytes to float.
#include "model_io/tensor_convert.h"

#include <bit>
#include <cstring>

#include <fmt/format.h>

namespace strata::model_io {
namespace {

static_assert(std::endian::native == std::endian::little,
              "model files are little-endian; a big-endian host needs byte swaps here");

uint16_t LoadU16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = uint32_t{bits & 0x8000u} << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t out;
  if (exponent == 0x1f) {
    out = sign | 0x7f800000u | (mantissa << 13);  // infinity or NaN
  } else if (exponent != 0) {
    out = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else if (mantissa == 0) {
    out = sign;  // signed zero
  } else {
    // Subnormal: value = mantissa * 2^-24. Normalise so the leading 1 becomes implicit.
    int e = -1;
    do {
      ++e;
      mantissa <<= 1;
    } while ((mantissa & 0x400u) == 0);
    out = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mantissa & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(out);
}

float BFloat16ToFloat(uint16_t bits) {
  return std::bit_cast<float>(uint32_t{bits} << 16);
}

Status DequantizeQ8_0(std::span<const std::byte> blocks, std::span<float> out) {
  if (blocks.size() % kQ8_0BlockBytes != 0)
    return Status::InvalidArgument(
        fmt::format("Q8_0 data of {} bytes is not a whole number of {}-byte blocks", blocks.size(),
                    kQ8_0BlockBytes));
  const size_t count = blocks.size() / kQ8_0BlockBytes;
  if (out.size() != count * kQ8_0BlockElements)
    return Status::InvalidArgument(
        fmt::format("Q8_0 data of {} blocks holds {} elements, not the {} asked for", count,
                    count * kQ8_0BlockElements, out.size()));
  for (size_t b = 0; b < count; ++b) {
    const std::byte* block = blocks.data() + b * kQ8_0BlockBytes;
    const float scale = HalfToFloat(LoadU16(block));
    float* dst = out.data() + b * kQ8_0BlockElements;
    for (size_t i = 0; i < kQ8_0BlockElements; ++i)
      dst[i] = scale * static_cast<float>(static_cast<int8_t>(block[2 + i]));
  }
  return Status::Ok();
}

std::string_view FloatFormatName(FloatFormat format) {
  switch (format) {
    case FloatFormat::kF32:
      return "F32";
    case FloatFormat::kF16:
      return "F16";
    case FloatFormat::kBF16:
      return "BF16";
    case FloatFormat::kQ8_0:
      return "Q8_0";
  }
  return "?";
}

Result<uint64_t> FloatFormatBytes(FloatFormat format, uint64_t elements) {
  switch (format) {
    case FloatFormat::kF32:
      if (elements > UINT64_MAX / 4) break;
      return elements * 4;
    case FloatFormat::kF16:
    case FloatFormat::kBF16:
      if (elements > UINT64_MAX / 2) break;
      return elements * 2;
    case FloatFormat::kQ8_0:
      if (elements % kQ8_0BlockElements != 0)
        return Status::InvalidArgument(
            fmt::format("{} elements are not a whole number of Q8_0 blocks of {}", elements,
                        kQ8_0BlockElements));
      return elements / kQ8_0BlockElements * kQ8_0BlockBytes;
  }
  return Status::InvalidArgument(
      fmt::format("{} elements of {} overflow a 64-bit size", elements, FloatFormatName(format)));
}

Status ConvertToFloat(FloatFormat format, std::span<const std::byte> bytes, std::span<float> out) {
  Result<uint64_t> want = FloatFormatBytes(format, out.size());
  if (!want.ok()) return want.status();
  if (*want != bytes.size())
    return Status::InvalidArgument(fmt::format("{} elements of {} take {} bytes, not {}",
                                               out.size(), FloatFormatName(format), *want,
                                               bytes.size()));
  switch (format) {
    case FloatFormat::kF32:
      if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
      return Status::Ok();
    case FloatFormat::kF16:
      for (size_t i = 0; i < out.size(); ++i) out[i] = HalfToFloat(LoadU16(&bytes[2 * i]));
      return Status::Ok();
    case FloatFormat::kBF16:
      for (size_t i = 0; i < out.size(); ++i) out[i] = BFloat16ToFloat(LoadU16(&bytes[2 * i]));
      return Status::Ok();
    case FloatFormat::kQ8_0:
      return DequantizeQ8_0(bytes, out);
  }
  return Status::Internal("unknown FloatFormat");
}

}  // namespace strata::model_io
