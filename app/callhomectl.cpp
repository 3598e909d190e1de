#include "cli/Cli.h"
#include "common/Log.h"
#include <iostream>

int main(int argc, char** argv)
{
    // callhomectl reports every failure itself as one stderr line; library log lines would break that contract.
    callhome::log::init(spdlog::level::off);
    return callhome::cli::run(argc, argv, std::cout, std::cerr);
}
