#include "identity/AutoApprove.h"
#include <algorithm>

namespace callhome::identity {
const config::AutoApproveRule* matchAutoApprove(
    const std::vector<config::AutoApproveRule>& rules, const AutoApproveCandidate& candidate)
{
    for (const auto& rule : rules) {
        // The configuration refuses such a rule; a rule built elsewhere must not turn into "approve everything".
        if (rule.sources.empty() && !rule.manufacturer) {
            continue;
        }
        if (rule.transport && *rule.transport != candidate.transport) {
            continue;
        }
        if (rule.manufacturer
            && (candidate.transport != config::Transport::Tls || candidate.manufacturer.empty()
                || *rule.manufacturer != candidate.manufacturer)) {
            continue;
        }
        if (!rule.sources.empty()
            && std::none_of(rule.sources.begin(), rule.sources.end(),
                [&](const AddressPrefix& p) { return p.contains(candidate.address); })) {
            continue;
        }
        return &rule;
    }
    return nullptr;
}
} // namespace callhome::identity
