# unit_certificate runs scripts/dev-pki and openssl (Debian package openssl) into a temp dir.
callhome_add_test(NAME unit_certificate SOURCES unit_certificate.cpp LIBS callhome-identity OpenSSL::Crypto)
# unit_trust_store makes its certificates, keys and CRLs in memory with OpenSSL and writes them to a temp dir.
callhome_add_test(NAME unit_trust_store SOURCES unit_trust_store.cpp LIBS callhome-identity callhome-transport OpenSSL::Crypto
    Threads::Threads)
