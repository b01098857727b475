#include "net/multipart_parser.hpp"

#include "backend/multipart.hpp"

#include <gtest/gtest.h>

namespace comfyfarm::net {
namespace {

TEST(Multipart, ReadsWhatTheBackendLinkWrites) {
  backend::MultipartForm form("XyZ-boundary");
  const std::string png("\x89PNG\r\n\x1a\n\0\0binary", 16);
  ASSERT_TRUE(form.add_file("image", "my \"cat\".png", "image/png", png));
  form.add_field("type", "input");
  form.add_field("overwrite", "true");
  const std::string ct = form.content_type();
  const std::string body = std::move(form).finish();

  auto parts = parse_multipart(ct, body);
  ASSERT_TRUE(parts) << parts.error().message;
  ASSERT_EQ(parts->size(), 3u);
  const FormPart* image = find_part(*parts, "image");
  ASSERT_NE(image, nullptr);
  EXPECT_EQ(image->filename.value_or(""), "my %22cat%22.png");
  EXPECT_EQ(image->content_type, "image/png");
  EXPECT_EQ(image->data, png);
  ASSERT_NE(find_part(*parts, "type"), nullptr);
  EXPECT_EQ(find_part(*parts, "type")->data, "input");
  EXPECT_FALSE(find_part(*parts, "type")->filename.has_value());
  EXPECT_EQ(find_part(*parts, "missing"), nullptr);
}

TEST(Multipart, AcceptsAQuotedBoundaryAndBrowserStyleHeaders) {
  const std::string body =
      "--abc\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a;b.png\"\r\n"
      "Content-Type: image/png\r\n\r\nDATA\r\n--abc--\r\n";
  auto parts = parse_multipart("multipart/form-data; boundary=\"abc\"", body);
  ASSERT_TRUE(parts) << parts.error().message;
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ(parts->at(0).filename.value_or(""), "a;b.png");
  EXPECT_EQ(parts->at(0).data, "DATA");
}

TEST(Multipart, RejectsMalformedBodiesWithAReason) {
  struct Case {
    const char* content_type;
    const char* body;
    const char* fragment;
  };
  const Case cases[] = {
      {"application/json", "{}", "multipart/form-data"},
      {"multipart/form-data", "--x\r\n", "boundary"},
      {"multipart/form-data; boundary=x", "no delimiter here", "boundary not found"},
      {"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc",
       "truncated"},
      {"multipart/form-data; boundary=x", "--x\r\nContent-Type: text/plain\r\n\r\nabc\r\n--x--", "Content-Disposition"},
      {"multipart/form-data; boundary=x", "--x\r\nno header end", "header end"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    auto parts = parse_multipart(c.content_type, c.body);
    ASSERT_FALSE(parts);
    EXPECT_EQ(parts.error().code, Errc::kInvalidArgument);
    EXPECT_NE(parts.error().message.find(c.fragment), std::string::npos) << parts.error().message;
  }
}

}  // namespace
}  // namespace comfyfarm::net
