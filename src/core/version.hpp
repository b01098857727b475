// The version string the binary reports.
#pragma once

namespace comfyfarm {
inline constexpr const char* kVersion = "0.1.0";
}
