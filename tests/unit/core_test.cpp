#include "core/error.hpp"

#include <gtest/gtest.h>

namespace comfyfarm {
namespace {

Result<int> half(int x) {
  if (x % 2 != 0) return fail(Errc::kInvalidArgument, "odd: " + std::to_string(x));
  return x / 2;
}

TEST(Result, CarriesValueOrError) {
  auto ok = half(4);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 2);
  auto bad = half(3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(bad.error().message, "odd: 3");
}

TEST(Result, ValueOnErrorThrowsErrorException) {
  auto bad = half(1);
  try {
    (void)bad.value();
    FAIL() << "value() of an error must throw";
  } catch (const ErrorException& e) {
    EXPECT_EQ(e.error().code, Errc::kInvalidArgument);
    EXPECT_STREQ(e.what(), "invalid_argument: odd: 1");
  }
}

TEST(Errc, EveryCodeHasAStableName) {
  EXPECT_EQ(to_string(Errc::kNotFound), "not_found");
  EXPECT_EQ(to_string(Errc::kResourceExhausted), "resource_exhausted");
  EXPECT_EQ(to_string(Errc::kTimeout), "timeout");
}

}  // namespace
}  // namespace comfyfarm
