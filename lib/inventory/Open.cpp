#include "inventory/Open.h"
#include "inventory/PostgresInventory.h"
#include <regex>

namespace callhome::inventory {
bool isPostgresSpec(const std::string& spec)
{
    if (spec.rfind("postgresql://", 0) == 0 || spec.rfind("postgres://", 0) == 0) {
        return true;
    }
    // libpq keyword/value form: "key=value ..." (a SQLite path with '=' in it would be odd; `./a=b` stays a path)
    static const std::regex keyword { R"(^\s*[a-z_]+\s*=)" };
    return std::regex_search(spec, keyword);
}

std::unique_ptr<Inventory> openInventory(const std::string& spec, OpenMode mode)
{
    if (isPostgresSpec(spec)) {
        return openPostgres(spec, mode == OpenMode::CreateAndMigrate);
    }
    return mode == OpenMode::CreateAndMigrate ? openSqlite(spec) : openSqliteExisting(spec);
}

std::string redactSpec(const std::string& spec)
{
    if (!isPostgresSpec(spec)) {
        return spec;
    }
    // URL: scheme://user:PASSWORD@host...  keyword form: password=VALUE or password='VALUE'
    static const std::regex urlPassword { R"(^(postgres(?:ql)?://[^:/@]*:)[^@]*@)" };
    static const std::regex keywordPassword { R"((\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+))" };
    auto out = std::regex_replace(spec, urlPassword, "$1***@");
    return std::regex_replace(out, keywordPassword, "$1***");
}
} // namespace callhome::inventory
