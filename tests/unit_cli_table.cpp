#include "cli/Table.h"
#include <catch2/catch.hpp>
#include <sstream>

using callhome::cli::Table;

TEST_CASE("Table aligns columns and marks empty cells")
{
    Table t({ "ID", "NAME", "DETAIL" });
    t.addRow({ "1", "edge-7", "long detail" });
    t.addRow({ "12", "", "" });
    std::ostringstream out;
    t.print(out);
    REQUIRE(out.str()
        == "ID  NAME    DETAIL\n"
           "1   edge-7  long detail\n"
           "12  -       -\n");
    REQUIRE(t.rows() == 2);
}

TEST_CASE("Table with no rows prints only the header")
{
    Table t({ "TIME", "KIND" });
    std::ostringstream out;
    t.print(out);
    REQUIRE(out.str() == "TIME  KIND\n");
}

TEST_CASE("Table counts UTF-8 code points, not bytes")
{
    Table t({ "NAME", "X" });
    t.addRow({ "r\xC3\xBCter", "1" }); // "rüter": 5 code points, 6 bytes
    std::ostringstream out;
    t.print(out);
    REQUIRE(out.str() == "NAME   X\nr\xC3\xBCter  1\n");
}

TEST_CASE("Table rejects a row with the wrong number of cells")
{
    Table t({ "A", "B" });
    REQUIRE_THROWS(t.addRow({ "only one" }));
}
