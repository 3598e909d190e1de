#pragma once
#include "inventory/Types.h"
#include <nlohmann/json.hpp>

namespace callhome::cli {
/** A device as callhomectl's JSON output shows it (field names documented in lib/cli/README.md). */
nlohmann::json toJson(const inventory::Device& device);
/** An event as callhomectl's JSON output shows it (field names documented in lib/cli/README.md). */
nlohmann::json toJson(const inventory::Event& event);
/** A trace record as callhomectl and the control API show it (fields documented in README.md, "Traceability"). */
nlohmann::json toJson(const inventory::TraceRecord& record);
/** A staged edit as callhomectl and the control API show it (fields documented in lib/cli/README.md). */
nlohmann::json toJson(const inventory::StagedEdit& edit);
} // namespace callhome::cli
