# packaging/debian/: the Debian package. `make deb` builds it from the release
# tarball (make dist) in deb-build/: the tarball becomes the .orig.tar.gz,
# packaging/debian/ is copied to debian/ in its unpacked tree, and
# dpkg-buildpackage -us -uc -b runs there. DEB_BUILD_OPTIONS=nocheck skips the
# test suite during the build. The .deb lands in deb-build/.
DEB_DIR_FILES = packaging/debian/changelog packaging/debian/control packaging/debian/copyright \
	packaging/debian/rules packaging/debian/conffile.awk packaging/debian/source/format \
	packaging/debian/postie.install packaging/debian/postie.docs \
	packaging/debian/postie.pam packaging/debian/postie.service packaging/debian/postie.tmpfiles \
	packaging/debian/postie.postinst packaging/debian/postie.postrm \
	packaging/debian/postie.lintian-overrides
EXTRA_DIST += $(DEB_DIR_FILES) tests/package/test_deb.sh
DEB_BUILD_DIR = $(abs_top_builddir)/deb-build

deb: dist
	@want=`dpkg-parsechangelog -l $(srcdir)/packaging/debian/changelog -S Version | sed 's/-[^-]*$$//'`; \
	if test "$$want" != "$(VERSION)"; then \
	  echo "packaging/debian/changelog is at $$want but configure.ac's AC_INIT says $(VERSION): add a changelog entry (dch -v $(VERSION)-1)" >&2; \
	  exit 1; \
	fi
	rm -rf $(DEB_BUILD_DIR)
	$(MKDIR_P) $(DEB_BUILD_DIR)
	cp $(distdir).tar.gz $(DEB_BUILD_DIR)/$(PACKAGE)_$(VERSION).orig.tar.gz
	cd $(DEB_BUILD_DIR) && tar -xzf $(PACKAGE)_$(VERSION).orig.tar.gz
	cp -R $(DEB_BUILD_DIR)/$(distdir)/packaging/debian $(DEB_BUILD_DIR)/$(distdir)/debian
	cd $(DEB_BUILD_DIR)/$(distdir) && dpkg-buildpackage -us -uc -b
	@ls $(DEB_BUILD_DIR)/*.deb

clean-local: clean-deb
clean-deb:
	rm -rf $(DEB_BUILD_DIR)

.PHONY: deb clean-deb
