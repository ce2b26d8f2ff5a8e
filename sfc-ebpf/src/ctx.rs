//! What steering needs from a program context, so the same code runs from tc and (later) XDP.

use aya_ebpf::programs::TcContext;

pub trait PacketCtx {
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// Packet length in bytes (for counters).
    fn len(&self) -> u32;
    /// The interface the packet arrived on.
    fn ifindex(&self) -> u32;
}

impl PacketCtx for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> u32 {
        TcContext::len(self)
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        unsafe { (*self.skb.skb).ifindex }
    }
}
