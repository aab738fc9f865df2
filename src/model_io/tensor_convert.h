// Element formats shared by the GGUF and safetensors readers and their conversion to float.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "strata/status.h"

namespace strata::model_io {

// IEEE 754 binary16 to float, exact for every input (subnormals, infinities, NaN payloads
// kept in their top bits).
float HalfToFloat(uint16_t bits);
// bfloat16 (the top half of a binary32) to float, exact.
float BFloat16ToFloat(uint16_t bits);

// Q8_0 as ggml stores it: blocks of 32 elements, each a little-endian fp16 scale `d`
// followed by 32 int8 quants `q`; element i of a block is d * q[i].
inline constexpr size_t kQ8_0BlockElements = 32;
inline constexpr size_t kQ8_0BlockBytes = 2 + kQ8_0BlockElements;

// Dequantizes `blocks` into `out`. InvalidArgument unless blocks.size() is a multiple of
// kQ8_0BlockBytes and out.size() is exactly 32 per block.
Status DequantizeQ8_0(std::span<const std::byte> blocks, std::span<float> out);

// The element formats a tensor can be converted from.
enum class FloatFormat : uint8_t { kF32, kF16, kBF16, kQ8_0 };

// "F32", "F16", "BF16", "Q8_0".
std::string_view FloatFormatName(FloatFormat format);

// Bytes that `elements` elements of `format` take; InvalidArgument when Q8_0's element count
// is not a multiple of its block.
Result<uint64_t> FloatFormatBytes(FloatFormat format, uint64_t elements);

// Converts `bytes` (little-endian, as both file formats store them) into `out`, one float
// per element. InvalidArgument when the byte count does not match out.size() elements.
Status ConvertToFloat(FloatFormat format, std::span<const std::byte> bytes, std::span<float> out);

}  // namespace strata::model_io
