// Shipping-data CSV parsing for `callhomectl expect --csv`.
#include "cli/Csv.h"
#include "common/Error.h"
#include <catch2/catch.hpp>
#include <sstream>

using namespace callhome;
using callhome::cli::parseShippingData;
using callhome::cli::splitCsvRecord;
using Fields = std::vector<std::string>;

namespace {
std::vector<cli::ShippingEntry> parse(const std::string& text)
{
    std::istringstream in(text);
    return parseShippingData(in, "ship.csv");
}
} // namespace

TEST_CASE("CSV records: commas, quotes and blanks")
{
    REQUIRE(splitCsvRecord("SN1,example,r-1") == Fields { "SN1", "example", "r-1" });
    REQUIRE(splitCsvRecord(" SN1 , example ,") == Fields { "SN1", "example", "" });
    REQUIRE(splitCsvRecord("\"SN,1\",\"Example, Inc.\",r-1") == Fields { "SN,1", "Example, Inc.", "r-1" });
    REQUIRE(splitCsvRecord("\"say \"\"hi\"\"\" , x") == Fields { "say \"hi\"", "x" });
    REQUIRE(splitCsvRecord("\" padded \",\"\"") == Fields { " padded ", "" });
    REQUIRE(splitCsvRecord("") == Fields { "" });
    REQUIRE_THROWS_WITH(splitCsvRecord("SN1,\"open"), Catch::Contains("field 2 has no closing quote"));
    REQUIRE_THROWS_WITH(splitCsvRecord("\"SN1\"x,y"), Catch::Contains("text after the closing quote"));
    REQUIRE_THROWS_WITH(splitCsvRecord("SN\"1,y"), Catch::Contains("quote inside an unquoted field"));
}

TEST_CASE("shipping data: lines, header, comments")
{
    SECTION("no header, optional names")
    {
        auto entries = parse("SN0001,example,r-1\nSN0002,example\nSN0003,example,\n");
        REQUIRE(entries.size() == 3);
        REQUIRE(entries[0].line == 1);
        REQUIRE(entries[0].device.serial == "SN0001");
        REQUIRE(entries[0].device.manufacturer == "example");
        REQUIRE(entries[0].device.name == "r-1");
        REQUIRE(!entries[1].device.name);
        REQUIRE(!entries[2].device.name);
    }
    SECTION("header in another order, comments, blank lines, CRLF and a BOM")
    {
        auto entries = parse("\xEF\xBB\xBF# shipment 42\r\n"
                             "Name,Serial,Manufacturer\r\n"
                             "\r\n"
                             "r-1,SN0001,\"Example, Inc.\"\r\n"
                             "   # indented comment\r\n"
                             ",SN0002,example\r\n");
        REQUIRE(entries.size() == 2);
        REQUIRE(entries[0].line == 4);
        REQUIRE(entries[0].device.serial == "SN0001");
        REQUIRE(entries[0].device.manufacturer == "Example, Inc.");
        REQUIRE(entries[0].device.name == "r-1");
        REQUIRE(entries[1].line == 6);
        REQUIRE(!entries[1].device.name);
    }
    SECTION("a header without a name column")
    {
        auto entries = parse("serial,manufacturer\nSN0001,example\n");
        REQUIRE(entries.size() == 1);
        REQUIRE(!entries[0].device.name);
    }
}

TEST_CASE("shipping data: errors name the file and line")
{
    REQUIRE_THROWS_WITH(parse("SN1,example\n\nSN2,example,r-2,extra\n"),
        "ship.csv:3: expected 2 or 3 fields (serial, manufacturer, optional name), found 4");
    REQUIRE_THROWS_WITH(parse("SN1\n"), Catch::StartsWith("ship.csv:1: expected 2 or 3 fields"));
    REQUIRE_THROWS_WITH(parse("# c\nSN1,example\n,example\n"), "ship.csv:3: the serial number is empty");
    REQUIRE_THROWS_WITH(parse("SN1,  \n"), "ship.csv:1: the manufacturer is empty");
    REQUIRE_THROWS_WITH(parse("SN1,\"example\n"), Catch::StartsWith("ship.csv:1: field 2 has no closing quote"));
    REQUIRE_THROWS_WITH(
        parse("serial,vendor\nSN1,example\n"), Catch::StartsWith("ship.csv:1: unknown column \"vendor\""));
    REQUIRE_THROWS_WITH(
        parse("serial,serial,manufacturer\n"), Catch::StartsWith("ship.csv:1: column \"serial\" appears twice"));
    REQUIRE_THROWS_WITH(parse("serial,name\n"), Catch::Contains("needs both a serial and a manufacturer"));
    REQUIRE_THROWS_WITH(
        parse("serial,manufacturer,name\nSN1,example\n"), "ship.csv:2: expected 3 fields (as in the header), found 2");
    REQUIRE_THROWS_WITH(parse("# only comments\n\n"), Catch::StartsWith("ship.csv: no devices"));
    REQUIRE_THROWS_WITH(parse("serial,manufacturer\n"), Catch::StartsWith("ship.csv: no devices"));
    REQUIRE_THROWS_AS(parse("SN1\n"), UsageError);
}
