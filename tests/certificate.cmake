# unit_certificate runs scripts/dev-pki and openssl (Debian package openssl) into a temp dir.
callhome_add_test(NAME unit_certificate SOURCES unit_certificate.cpp LIBS callhome-identity OpenSSL::Crypto)
