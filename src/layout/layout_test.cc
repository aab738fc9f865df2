// KvLayout sizes, validation, canonical names, and gather/scatter round trips on odd shapes.
#include "strata/layout.h"

#include <cstring>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

namespace strata {
namespace {

KvLayout Llama8B() {
  return KvLayout{.num_layers = 32,
                  .num_kv_heads = 8,
                  .head_dim = 128,
                  .dtype = DType::kBFloat16,
                  .tokens_per_block = 16};
}

TEST(KvLayoutTest, SizesOfARealisticLayout) {
  KvLayout l = Llama8B();
  ASSERT_TRUE(l.Validate().ok());
  EXPECT_EQ(l.chunk_bytes(), 16u * 8 * 128 * 2);
  EXPECT_EQ(l.block_bytes(), 2u * 1024 * 1024);  // 2 MiB per 16-token block
  EXPECT_EQ(l.bytes_per_token(), 128u * 1024);   // DESIGN.md: ~128 KiB per token
}

TEST(KvLayoutTest, MlaHasOneComponent) {
  KvLayout l{.num_layers = 61,
             .format = KvFormat::kLatent,
             .num_kv_heads = 1,
             .head_dim = 576,
             .dtype = DType::kFloat8E4M3,
             .tokens_per_block = 64};
  ASSERT_TRUE(l.Validate().ok());
  EXPECT_EQ(l.num_components(), 1u);
  EXPECT_EQ(l.block_bytes(), 61u * 64 * 576);
}

TEST(KvLayoutTest, DTypes) {
  EXPECT_EQ(DTypeSize(DType::kFloat32), 4u);
  EXPECT_EQ(DTypeSize(DType::kFloat16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBFloat16), 2u);
  EXPECT_EQ(DTypeSize(DType::kFloat8E5M2), 1u);
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat8E4M3,
                  DType::kFloat8E5M2}) {
    auto parsed = ParseDType(DTypeName(d));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, d);
  }
  auto bad = ParseDType("int4");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("int4"), std::string::npos);
}

TEST(KvLayoutTest, ValidateNamesTheBadField) {
  KvLayout l = Llama8B();
  l.head_dim = 0;
  Status s = l.Validate();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("head_dim"), std::string::npos);
  l = Llama8B();
  l.num_layers = 1u << 20;
  l.tokens_per_block = 1u << 12;
  EXPECT_FALSE(l.Validate().ok());  // a block of >= 4 GiB
}

TEST(KvLayoutTest, CanonicalIsStableAndDistinguishesFields) {
  // Golden: block keys and on-disk formats bind this string; changing it changes every key.
  EXPECT_EQ(Llama8B().Canonical(),
            "strata.layout.v1;layers=32;format=kv;kv_heads=8;head_dim=128;dtype=bf16;"
            "tokens_per_block=16;chunk_order=nhd");
  KvLayout hnd = Llama8B();
  hnd.chunk_order = ChunkOrder::kHeadTokenDim;
  EXPECT_NE(hnd.Canonical(), Llama8B().Canonical());
  KvLayout fp16 = Llama8B();
  fp16.dtype = DType::kFloat16;  // same size, different meaning
  EXPECT_NE(fp16.Canonical(), Llama8B().Canonical());
}

// A device cache in host memory with every byte distinct per (layer, offset).
struct FakeDevice {
  FakeDevice(const KvLayout& layout, DeviceOrder order, uint32_t blocks) {
    view.layout = layout;
    view.order = order;
    view.num_blocks = blocks;
    std::mt19937 rng(layout.num_layers * 31 + blocks);
    for (uint32_t l = 0; l < layout.num_layers; ++l) {
      auto& t = tensors.emplace_back(view.layer_bytes());
      for (auto& b : t) b = static_cast<std::byte>(rng());
      view.layer_base.push_back(t.data());
    }
  }
  std::vector<std::vector<std::byte>> tensors;
  LayerSeparateView view;
};

struct Shape {
  const char* name;
  KvLayout layout;
};

class GatherScatterTest : public ::testing::TestWithParam<std::tuple<Shape, DeviceOrder>> {};

TEST_P(GatherScatterTest, RoundTripMovesExactlyOneBlock) {
  const auto& [shape, order] = GetParam();
  ASSERT_TRUE(shape.layout.Validate().ok());
  const uint32_t blocks = 5;
  FakeDevice src(shape.layout, order, blocks);
  FakeDevice dst(shape.layout, order, blocks);
  ASSERT_TRUE(src.view.Validate().ok());

  std::vector<std::byte> block(shape.layout.block_bytes());
  ASSERT_TRUE(GatherBlock(src.view, 3, block).ok());

  // Block-contiguous order: chunk (l, c) of block 3 sits at ContiguousChunkOffset(l, c).
  for (uint32_t l = 0; l < shape.layout.num_layers; ++l)
    for (uint32_t c = 0; c < shape.layout.num_components(); ++c)
      ASSERT_EQ(std::memcmp(block.data() + ContiguousChunkOffset(shape.layout, l, c),
                            src.view.chunk(l, c, 3), shape.layout.chunk_bytes()),
                0);

  auto before = dst.tensors;
  ASSERT_TRUE(ScatterBlock(block, dst.view, 1).ok());
  for (uint32_t l = 0; l < shape.layout.num_layers; ++l) {
    for (uint32_t b = 0; b < blocks; ++b) {
      for (uint32_t c = 0; c < shape.layout.num_components(); ++c) {
        const std::byte* expect =
            b == 1 ? src.view.chunk(l, c, 3)
                   : before[l].data() + (dst.view.chunk(l, c, b) - dst.tensors[l].data());
        ASSERT_EQ(std::memcmp(dst.view.chunk(l, c, b), expect, shape.layout.chunk_bytes()), 0)
            << "layer " << l << " block " << b << " component " << c;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, GatherScatterTest,
    ::testing::Combine(::testing::Values(Shape{"one_layer_one_head",
                                               {.num_layers = 1,
                                                .num_kv_heads = 1,
                                                .head_dim = 1,
                                                .dtype = DType::kFloat32,
                                                .tokens_per_block = 1}},
                                         Shape{"mla",
                                               {.num_layers = 3,
                                                .format = KvFormat::kLatent,
                                                .num_kv_heads = 1,
                                                .head_dim = 576,
                                                .dtype = DType::kBFloat16,
                                                .tokens_per_block = 16}},
                                         Shape{"non_pow2_head_dim",
                                               {.num_layers = 5,
                                                .num_kv_heads = 3,
                                                .head_dim = 96,
                                                .dtype = DType::kFloat16,
                                                .tokens_per_block = 7}},
                                         Shape{"fp8_head_dim_80",
                                               {.num_layers = 2,
                                                .num_kv_heads = 2,
                                                .head_dim = 80,
                                                .dtype = DType::kFloat8E4M3,
                                                .tokens_per_block = 16}},
                                         Shape{"gqa",
                                               {.num_layers = 4,
                                                .num_kv_heads = 8,
                                                .head_dim = 128,
                                                .dtype = DType::kBFloat16,
                                                .tokens_per_block = 16}}),
                       ::testing::Values(DeviceOrder::kBlockMajor, DeviceOrder::kKvMajor)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param).name) +
             (std::get<1>(info.param) == DeviceOrder::kBlockMajor ? "_block_major" : "_kv_major");
    });

TEST(GatherScatterTest, RejectsBadArguments) {
  KvLayout l = Llama8B();
  l.num_layers = 2;
  FakeDevice dev(l, DeviceOrder::kBlockMajor, 2);
  std::vector<std::byte> block(l.block_bytes());
  Status s = GatherBlock(dev.view, 2, block);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("block 2 out of range"), std::string::npos);
  std::vector<std::byte> small(l.block_bytes() - 1);
  EXPECT_FALSE(ScatterBlock(small, dev.view, 0).ok());
  dev.view.layer_base.pop_back();
  EXPECT_FALSE(dev.view.Validate().ok());
}

TEST(LayerSeparateViewTest, DenseStridesFollowTheOrder) {
  KvLayout l = Llama8B();
  LayerSeparateView v{.layout = l, .order = DeviceOrder::kBlockMajor, .num_blocks = 10};
  EXPECT_EQ(v.block_stride(), l.layer_block_bytes());
  EXPECT_EQ(v.component_stride(), l.chunk_bytes());
  EXPECT_TRUE(v.components_adjacent());
  EXPECT_EQ(v.layer_bytes(), 10 * l.layer_block_bytes());
  v.order = DeviceOrder::kKvMajor;
  EXPECT_EQ(v.block_stride(), l.chunk_bytes());
  EXPECT_EQ(v.component_stride(), 10 * l.chunk_bytes());
  EXPECT_FALSE(v.components_adjacent());
  EXPECT_EQ(v.layer_bytes(), 10 * l.layer_block_bytes());
}

// A padded KV-major tensor: every block followed by 64 bytes the engine uses for itself.
TEST(LayerSeparateViewTest, ExplicitStridesRoundTripAndLeavePaddingAlone) {
  KvLayout l{.num_layers = 2,
             .num_kv_heads = 2,
             .head_dim = 8,
             .dtype = DType::kFloat16,
             .tokens_per_block = 4};
  const uint32_t blocks = 4;
  const size_t bs = l.chunk_bytes() + 64, cs = bs * blocks;
  std::vector<std::vector<std::byte>> tensors(2, std::vector<std::byte>(2 * cs, std::byte{0xEE}));
  LayerSeparateView v{.layout = l,
                      .order = DeviceOrder::kKvMajor,
                      .num_blocks = blocks,
                      .layer_base = {tensors[0].data(), tensors[1].data()},
                      .block_stride_bytes = bs,
                      .component_stride_bytes = cs};
  ASSERT_TRUE(v.Validate().ok()) << v.Validate().ToString();
  EXPECT_EQ(v.layer_bytes(), (blocks - 1) * bs + cs + l.chunk_bytes());
  std::vector<std::byte> block(l.block_bytes());
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<std::byte>(i * 7);
  ASSERT_TRUE(ScatterBlock(block, v, 2).ok());
  EXPECT_EQ(
      std::memcmp(v.chunk(1, 1, 2), block.data() + ContiguousChunkOffset(l, 1, 1), l.chunk_bytes()),
      0);
  EXPECT_EQ(v.chunk(1, 1, 2), tensors[1].data() + 2 * bs + cs);
  EXPECT_EQ(v.chunk(1, 1, 2)[l.chunk_bytes()], std::byte{0xEE});  // padding untouched
  std::vector<std::byte> back(l.block_bytes());
  ASSERT_TRUE(GatherBlock(v, 2, back).ok());
  EXPECT_EQ(back, block);
}

TEST(LayerSeparateViewTest, RejectsOverlappingStrides) {
  KvLayout l{.num_layers = 1,
             .num_kv_heads = 1,
             .head_dim = 16,
             .dtype = DType::kFloat32,
             .tokens_per_block = 2};
  std::vector<std::byte> t(1 << 12);
  LayerSeparateView v{
      .layout = l, .order = DeviceOrder::kBlockMajor, .num_blocks = 4, .layer_base = {t.data()}};
  v.block_stride_bytes = l.chunk_bytes();  // K and V of a block would overlap the next block
  Status s = v.Validate();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("overlap"), std::string::npos);
  v.block_stride_bytes = l.chunk_bytes() / 2;
  EXPECT_FALSE(v.Validate().ok());
  // Components outermost, far enough apart: fine.
  v.block_stride_bytes = l.chunk_bytes();
  v.component_stride_bytes = 4 * l.chunk_bytes();
  EXPECT_TRUE(v.Validate().ok());
  v.component_stride_bytes = 3 * l.chunk_bytes();  // V of block 0 is K of block 3
  EXPECT_FALSE(v.Validate().ok());
}

}  // namespace
}  // namespace strata
