"""mkdocs hook: the site carries its own scripts, so it works offline and opened from disk.

The scripts come from the npm packages pinned in package.json and package-lock.json (``npm ci``
in the checkout puts them in node_modules/; .ci/run does this) and are copied into the site:

- MathJax, its single-file SVG build: SVG output needs no web fonts, which a page opened with
  ``file://`` could not load;
- iframe-worker's shim, which the offline plugin of mkdocs-material needs for search under
  ``file://`` (browsers refuse web workers there); mkdocs.yml lists it under ``extra.polyfills``,
  so the plugin does not add its CDN copy.
"""
from __future__ import annotations

from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

#: site path -> file under node_modules/
ASSETS = {
    "javascripts/mathjax/tex-svg-full.js": "mathjax/es5/tex-svg-full.js",
    "javascripts/iframe-worker-shim.js": "iframe-worker/shim/index.js",
}


def on_files(files, config):
    node_modules = Path(config.config_file_path).parent / "node_modules"
    for site_path, package_path in ASSETS.items():
        source = node_modules / package_path
        if not source.is_file():
            raise PluginError(
                f"{source} is missing: run `npm ci` in the checkout (it installs the versions "
                "pinned in package-lock.json), then build the site again"
            )
        files.append(File.generated(config, site_path, abs_src_path=str(source)))
    return files
