//! A simulated PCI function: ids, class, driver, IOMMU group, BARs and what it exposes.

/// One PCI function.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub(crate) bdf: String,
    pub(crate) vendor: u16,
    pub(crate) device: u16,
    pub(crate) class: u32,
    pub(crate) subsystem: (u16, u16),
    pub(crate) native_driver: Option<String>,
    pub(crate) bound: bool,
    pub(crate) driver_override: Option<String>,
    pub(crate) group: Option<u32>,
    pub(crate) drm_card: Option<u32>,
    pub(crate) boot_vga: bool,
    pub(crate) nvidia_minor: Option<u32>,
    pub(crate) nodes: Vec<String>,
    pub(crate) reset_method: Option<String>,
    pub(crate) sound_card: Option<u32>,
    /// BAR index, address (None: the renderer picks one), size.
    pub(crate) bars: Vec<(usize, Option<u64>, u64)>,
    /// BAR index and the sizes it offers (`resourceN_resize`: bit n is 1 MiB << n).
    pub(crate) resizable: Vec<(usize, u64)>,
    /// The largest BAR the bridge window above the card fits: a larger resize gets ENOSPC.
    pub(crate) bar_window: Option<u64>,
    pub(crate) i2c_buses: Vec<u32>,
    pub(crate) framebuffer: bool,
}

impl DeviceSpec {
    /// `bdf` in the full `dddd:bb:dd.f` form; `class` as sysfs shows it (0x030000 for VGA).
    pub fn new(bdf: &str, vendor: u16, device: u16, class: u32) -> DeviceSpec {
        DeviceSpec {
            bdf: bdf.to_string(),
            vendor,
            device,
            class,
            subsystem: (vendor, 0),
            native_driver: None,
            bound: true,
            driver_override: None,
            group: None,
            drm_card: None,
            boot_vga: false,
            nvidia_minor: None,
            nodes: Vec::new(),
            reset_method: None,
            sound_card: None,
            bars: Vec::new(),
            resizable: Vec::new(),
            bar_window: None,
            i2c_buses: Vec::new(),
            framebuffer: false,
        }
    }

    pub fn subsystem(mut self, vendor: u16, device: u16) -> DeviceSpec {
        self.subsystem = (vendor, device);
        self
    }

    /// The driver whose id table matches the device; bound at start when its module is loaded.
    pub fn driver(mut self, native: &str) -> DeviceSpec {
        self.native_driver = Some(native.to_string());
        self
    }

    /// Starts unbound even though its driver is loaded (as after a manual unbind).
    pub fn unbound(mut self) -> DeviceSpec {
        self.bound = false;
        self
    }

    pub fn driver_override(mut self, driver: &str) -> DeviceSpec {
        self.driver_override = Some(driver.to_string());
        self
    }

    pub fn group(mut self, group: u32) -> DeviceSpec {
        self.group = Some(group);
        self
    }

    /// The DRM minor: `card<n>` and `renderD<128+n>` exist while a DRM driver drives it.
    pub fn drm_card(mut self, n: u32) -> DeviceSpec {
        self.drm_card = Some(n);
        self
    }

    /// Only meaningful on display-class devices, which always show `boot_vga`.
    pub fn boot_vga(mut self, boot_vga: bool) -> DeviceSpec {
        self.boot_vga = boot_vga;
        self
    }

    /// `/dev/nvidia<minor>` and `/proc/driver/nvidia/gpus/<bdf>/` exist while bound to `nvidia`.
    pub fn nvidia_minor(mut self, minor: u32) -> DeviceSpec {
        self.nvidia_minor = Some(minor);
        self
    }

    /// A device node (`/dev/nvme0n1`) that exists while the native driver drives the device and
    /// is owned by that driver's module.
    pub fn node(mut self, path: &str) -> DeviceSpec {
        self.nodes.push(path.to_string());
        self
    }

    /// ALSA card `n` while the native driver drives it: `sound/card<n>/` in sysfs and
    /// /dev/snd/controlC<n>, pcmC<n>D3p, hwC<n>D0. As with snd_hda_intel, an unbind waits until
    /// every one of them is closed.
    pub fn sound_card(mut self, n: u32) -> DeviceSpec {
        self.sound_card = Some(n);
        self
    }

    /// An I2C bus of the card (a DDC channel) with its i2c-dev node /dev/i2c-<n> while the
    /// native driver drives it; an unbind waits until the node is closed.
    pub fn i2c_bus(mut self, n: u32) -> DeviceSpec {
        self.i2c_buses.push(n);
        self
    }

    /// `reset_method` as the kernel lists it (`flr bus`); without this the file is absent, as
    /// for a device the kernel knows no way to reset. A write takes any of these methods in any
    /// order, `default` (this list again) or nothing (none); anything else is EINVAL.
    pub fn reset_method(mut self, methods: &str) -> DeviceSpec {
        self.reset_method = Some(methods.to_string());
        self
    }

    /// A memory BAR of `size` bytes (a power of two), shown in `resource`.
    pub fn bar(mut self, index: usize, size: u64) -> DeviceSpec {
        self.bars.push((index, None, size));
        self
    }

    /// A memory BAR at a given address, so a firmware frame buffer can sit in it; also shown in
    /// /proc/iomem.
    pub fn bar_at(mut self, index: usize, start: u64, size: u64) -> DeviceSpec {
        self.bars.push((index, Some(start), size));
        self
    }

    /// The Resizable BAR capability covers the BAR: `resource<N>_resize` shows `sizes` (bit n
    /// is 1 MiB << n; an AMD card's VRAM BAR offers 0x3f00, 256 MiB to 8 GiB) and takes a bit
    /// number while no driver is bound, as the kernel does.
    pub fn resizable(mut self, index: usize, sizes: u64) -> DeviceSpec {
        self.resizable.push((index, sizes));
        self
    }

    /// The bridge window above the card fits no BAR larger than `bytes`: a resize beyond it
    /// fails with ENOSPC and the BAR keeps its size.
    pub fn bar_window(mut self, bytes: u64) -> DeviceSpec {
        self.bar_window = Some(bytes);
        self
    }

    /// Its native driver registers a frame buffer (DRM fbdev emulation) while it drives the
    /// device with its DRM module loaded, and removes a firmware frame buffer in its BARs when it
    /// binds, as DRM drivers do.
    pub fn framebuffer(mut self) -> DeviceSpec {
        self.framebuffer = true;
        self
    }

    pub(crate) fn is_display(&self) -> bool {
        self.class >> 16 == 0x03
    }
}
