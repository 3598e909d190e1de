#pragma once
#include <string>

namespace callhome {
/** Overwrites the characters of `secret` (explicit_bzero: not optimised away) and empties it. */
void wipe(std::string& secret) noexcept;

/** A password or private key held in memory: wiped when it goes away. Never printed or logged. */
class Secret {
public:
    Secret() = default;
    explicit Secret(std::string text)
        : m_text(std::move(text))
    { }
    ~Secret() { wipe(m_text); }
    Secret(const Secret& other)
        : m_text(other.m_text)
    { }
    Secret& operator=(const Secret& other)
    {
        if (this != &other) {
            wipe(m_text);
            m_text = other.m_text;
        }
        return *this;
    }
    // A move copies and wipes the source: a moved-from short string would keep its characters in place.
    Secret(Secret&& other)
        : m_text(other.m_text)
    {
        wipe(other.m_text);
    }
    Secret& operator=(Secret&& other)
    {
        if (this != &other) {
            wipe(m_text);
            m_text = other.m_text;
            wipe(other.m_text);
        }
        return *this;
    }
    const std::string& reveal() const noexcept { return m_text; }
    bool empty() const noexcept { return m_text.empty(); }

private:
    std::string m_text;
};
} // namespace callhome
