#pragma once
#include "config/Config.h"
#include <string>
#include <vector>

namespace callhome::identity {
/** What an auto-approve rule looks at: a first-contact identity. */
struct AutoApproveCandidate {
    config::Transport transport = config::Transport::Ssh;
    std::string address; ///< numeric peer address, no port
    std::string manufacturer; ///< TLS: the trust-store manufacturer that verified the chain; empty otherwise
};

/** The first rule (in order) that `candidate` matches, or nullptr. Rules without any criterion never match. */
const config::AutoApproveRule* matchAutoApprove(
    const std::vector<config::AutoApproveRule>& rules, const AutoApproveCandidate& candidate);
} // namespace callhome::identity
